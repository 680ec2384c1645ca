"""The benchmark harness's own logic (not timings): fastconv._bench.paired_ratio."""
import pytest

from fastconv import _bench


def test_paired_ratio_alternates_and_divides(monkeypatch):
    """A fake clock advanced by the calls themselves: the peer costs 3 units, fastconv 2;
    every round's ratio is 1.5, and the order of the two blocks swaps every round."""
    clock = [0.0]
    order = []
    monkeypatch.setattr(_bench.time, "perf_counter", lambda: clock[0])

    def peer(x, k):
        clock[0] += 0.003
        order.append("p")

    def fc(x, k):
        clock[0] += 0.002
        order.append("f")

    med, lo, hi = _bench.paired_ratio(peer, fc, None, None, 0.003, 0.002, rounds=4)
    assert med == pytest.approx(1.5) and lo == pytest.approx(1.5) and hi == pytest.approx(1.5)
    n_p, n_f = 7, 10            # ceil(PAIR_BLOCK_S / t): blocks of >= 20 ms
    assert order == (["p"] * n_p + ["f"] * n_f + ["f"] * n_f + ["p"] * n_p) * 2


def test_paired_ratio_median_of_rounds(monkeypatch):
    """A slow first round (the machine busy elsewhere) does not move the median."""
    clock = [0.0]
    calls = [0]
    monkeypatch.setattr(_bench.time, "perf_counter", lambda: clock[0])

    def peer(x, k):
        calls[0] += 1
        clock[0] += 0.05 if calls[0] == 1 else 0.01

    def fc(x, k):
        clock[0] += 0.01

    med, lo, hi = _bench.paired_ratio(peer, fc, None, None, 0.05, 0.05, rounds=5)
    assert med == pytest.approx(1.0) and hi == pytest.approx(5.0) and lo == pytest.approx(1.0)
