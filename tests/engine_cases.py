"""Inputs the engine tests share: the device they run on (ALMA_TEST_DEVICE; benchmarks/gpu_check.sh sets
cuda), a chat to generate from, and judge conversations with the answer prefix the score is read after."""

import os

DEVICE = os.environ.get("ALMA_TEST_DEVICE", "cpu")
CHAT = [{"role": "user", "content": "Why is the sky blue?"}]
ANSWER_PREFIX = "Rating: [["
JUDGED = [
    [{"role": "user", "content": "Rate: the sky is blue because of Rayleigh scattering."}],
    [
        {"role": "system", "content": "You are a strict judge."},
        {"role": "user", "content": "Rate this much longer answer about photosynthesis and plants, please."},
    ],
    [{"role": "user", "content": "Rate: 2 + 2 = 5"}],
]
