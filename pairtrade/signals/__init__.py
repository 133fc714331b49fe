"""pairtrade.signals"""
