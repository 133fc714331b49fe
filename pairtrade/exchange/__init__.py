"""pairtrade.exchange"""
