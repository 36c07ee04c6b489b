"""Scripts the tests run as processes of their own, by path (python tests/helpers/NAME.py), not test files.

hang_in_save.py: train.py hanging inside the save of one step, for tests/test_resilience.py to SIGKILL it there.
multidevice_step.py: a train step on 1 vs 8 simulated CPU devices, for tests/test_training.py.
(The browser the web demo's test drives is bench/chromium.py, shared with the demo's benchmarks.)
"""
