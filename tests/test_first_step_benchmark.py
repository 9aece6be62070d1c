"""``python -m benchmarks.first_step``: a new process's first step with the pool's
kernel wrappers compiled, then loaded (the mechanism, not the times)."""
from benchmarks import first_step


def test_the_second_process_at_two_threads_loads_every_wrapper_the_first_compiled():
    one, compiled, loaded = first_step.run("relu (64", 2)
    assert one["threads"] == 1 and one["wrappers"] == 0        # (no pool at one thread)
    assert compiled["wrappers"] >= 2 and compiled["loaded"] == 0
    assert loaded["wrappers"] == compiled["wrappers"] == loaded["loaded"]
    assert loaded["row"] == compiled["row"] == "relu (64,64,16,16)"
