"""pairtrade.broker"""
