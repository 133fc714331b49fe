"""pairtrade.backtest"""
