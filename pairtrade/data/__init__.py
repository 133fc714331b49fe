"""pairtrade.data"""
