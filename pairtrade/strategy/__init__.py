"""pairtrade.strategy"""
