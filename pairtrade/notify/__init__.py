"""pairtrade.notify"""
