"""Monitoring: drift of the night's features and scores against the champion's training
data, and the served scores' performance once their labels have matured."""
