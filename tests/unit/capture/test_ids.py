import threading
import time

import pytest

from slm_agents._ids import id_timestamp, new_id


def test_ids_are_unique_sorted_and_carry_their_time():
    before = time.time()
    ids = [new_id() for _ in range(20_000)]
    after = time.time()
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)
    assert before - 0.002 <= id_timestamp(ids[0]) <= id_timestamp(ids[-1]) <= after + 0.002


def test_ids_from_many_threads_do_not_collide():
    out: list[list[str]] = [[] for _ in range(8)]

    def work(k):
        out[k].extend(new_id() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for chunk in out for i in chunk]
    assert len(set(everything)) == 16_000


def test_id_timestamp_rejects_garbage():
    with pytest.raises(ValueError):
        id_timestamp("nope")
    with pytest.raises(ValueError):
        id_timestamp("U" * 26)  # U is not in Crockford's alphabet


def test_the_fast_encoding_is_the_ulid_base32_of_the_value():
    import random

    from slm_agents._ids import _encode, _encode_reference

    rng = random.Random(7)
    values = [0, 1, (1 << 128) - 1, 1 << 127, (1 << 80) - 1] + [rng.getrandbits(128) for _ in range(5000)]
    for value in values:
        assert _encode(value) == _encode_reference(value)
    assert _encode(0) == "0" * 26 and _encode((1 << 128) - 1) == "7" + "Z" * 25
