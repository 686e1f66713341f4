"""sasl"""
