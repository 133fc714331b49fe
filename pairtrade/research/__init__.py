"""pairtrade.research: studies on recorded data, e.g. published results as presets (:mod:`.presets`)."""
