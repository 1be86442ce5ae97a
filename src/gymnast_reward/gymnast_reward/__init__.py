"""Reward judges (local VLM, OpenAI-compatible API, learned, oracle), calibration and the reward node."""
