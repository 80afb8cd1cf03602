"""A pool of worker processes sharing one memoize cache."""

import multiprocessing

import mmkv

# Every process runs this when it imports the module: the parent, and each worker that the
# "spawn" start method launches. They all open the same two files.
cache = mmkv.open("squares.mmkv", max_bytes=16 * 2**20)
runs = mmkv.open("runs.mmkv")


@cache.memoize(ttl=600)
def slow_square(n: int) -> int:
    """Pretend to work hard, and count how often the work is really done."""
    with runs.transaction():
        runs["count"] = runs.get("count", 0) + 1
    return n * n


def handle(n: int) -> int:
    """What each worker does with one task."""
    return slow_square(n)


if __name__ == "__main__":
    cache.clear()
    runs.clear()
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(processes=3) as pool:
        results = pool.map(handle, [1, 2, 3] * 4)
    print(results)
    print("computed", runs["count"], "times")
