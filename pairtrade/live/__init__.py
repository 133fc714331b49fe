"""pairtrade.live"""
