"""Two processes count words into one store at the same time."""

import multiprocessing

import mmkv

PATH = "words.mmkv"


def count(words: list[str]) -> None:
    """Add one to each word's count; runs in a worker process."""
    with mmkv.open(PATH) as db:  # each process opens the store itself
        for word in words:
            with db.transaction():  # read-modify-write, atomic across processes
                db[word] = db.get(word, 0) + 1


if __name__ == "__main__":
    with mmkv.open(PATH) as db:
        db.clear()

    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=count, args=(["apple", "pear", "apple"],)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    with mmkv.open(PATH, readonly=True) as db:
        print(dict(sorted(db.items())))
