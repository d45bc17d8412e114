"""xbarsolve.program: cell levels, write cost, endurance, accelerator schedules, weight reuse."""

from __future__ import annotations

import numpy as np
import pytest

from xbarsolve.program import (ARAS_CENTRES, COMPUTE, WRITE, Accelerator, MappedLayer, MappedNetwork, WriteParams,
                               accumulate_wear, cell_matrix, code_matrix, code_weights, compare, join_levels,
                               layer_centre, lifetime_s, n_clipped, reencode, schedule, split_codes, weight_codes,
                               write_cost)


# ---------------------------------------------------------------- cells
def test_split_most_significant_cell_first_and_back():
    assert split_codes(0b11_01_00_10).tolist() == [3, 1, 0, 2]
    codes = np.arange(256).reshape(16, 16)
    lv = split_codes(codes)
    assert lv.shape == (16, 16, 4) and lv.max() == 3
    assert np.array_equal(join_levels(lv), codes)
    m = cell_matrix(codes)
    assert m.shape == (16, 64) and m[0, 4:8].tolist() == split_codes(1).tolist()
    assert np.array_equal(code_matrix(m), codes)
    # other widths: 3 cells of 3 bits hold 9-bit codes
    c = np.random.default_rng(1).integers(0, 512, (5, 7))
    assert np.array_equal(join_levels(split_codes(c, 3, 3), 3), c)


def test_split_rejects_out_of_range_codes():
    with pytest.raises(ValueError, match="0..255"):
        split_codes([256])
    with pytest.raises(ValueError, match="integers"):
        split_codes([1.5])
    with pytest.raises(ValueError, match="levels must lie in 0..3"):
        join_levels([[4, 0]])


def test_weight_codes_match_the_cnn_quantizer(rng):
    from xbarsolve.cnn.mapping import quantize_weights

    W = rng.normal(0, 0.1, (40, 30))
    codes, lo, step = weight_codes(W, 8)
    assert codes.min() == 0 and codes.max() == 255
    assert np.allclose(code_weights(codes, lo, step), quantize_weights(W, 8), rtol=0, atol=1e-15)


# ---------------------------------------------------------------- write cost
def test_write_cost_hand_case():
    p = WriteParams(pulse_duration_s=2e-6, pulse_energy_j=1e-11)
    c = write_cost([[0, 3, 1], [2, 2, 0]], [[0, 1, 3], [2, 0, 3]], p)
    assert c.n_pulses == 9 and c.cells_written == 4
    assert c.pulses.tolist() == [[0, 2, 2], [0, 2, 3]]
    # rows one after another, the cells of a row in parallel: max 2 then max 3 pulses
    assert c.row_latency_s.tolist() == [4e-6, 6e-6]
    assert c.latency_s == pytest.approx(10e-6, rel=1e-15)
    assert c.energy_j == pytest.approx(9e-11, rel=1e-15)


def test_unchanged_rows_cost_nothing():
    c = write_cost([[1, 1], [0, 2]], [[1, 1], [3, 2]])
    assert c.rows_written == 1 and c.row_latency_s[0] == 0 and c.n_pulses == 3


def test_aras_full_write_latency():
    acc = Accelerator()
    assert acc.n_crossbars == 96 * 24 and acc.cells_per_weight == 4 and acc.weights_per_row == 32
    assert acc.write_cycles == pytest.approx(768_000, rel=1e-12)
    full = write_cost(np.zeros((128, 128), int), np.full((128, 128), 3), acc.write)
    assert full.latency_s * acc.clock_hz == pytest.approx(768_000, rel=1e-12)


def test_write_verify_is_seeded_and_has_the_geometric_mean():
    p = WriteParams(model="write_verify", verify_success_probability=0.5, seed=3)
    old = np.zeros((200, 500), int)
    new = np.random.default_rng(0).integers(0, 4, old.shape)
    a, b = write_cost(old, new, p), write_cost(old, new, p)
    assert np.array_equal(a.pulses, b.pulses)
    steps = np.abs(new - old)
    assert np.all(a.pulses >= steps) and np.all(a.pulses[steps == 0] == 0)
    assert a.cells_written == np.count_nonzero(steps)
    # each level step takes Geometric(p) pulses: mean 1/p = 2, variance (1-p)/p^2 = 2 per step
    n_steps = steps.sum()
    mean = a.n_pulses / n_steps
    assert abs(mean - 2.0) < 5 * np.sqrt(2.0 / n_steps)


def test_write_cost_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        write_cost([[0, 1]], [[0, 1, 2]])
    with pytest.raises(ValueError, match="old_levels must hold levels >= 0"):
        write_cost([[-1]], [[0]])
    with pytest.raises(ValueError, match="pulse_duration_s"):
        WriteParams(pulse_duration_s=-1.0)
    with pytest.raises(ValueError, match="verify_success_probability"):
        WriteParams(verify_success_probability=0.0)
    with pytest.raises(ValueError, match="model"):
        WriteParams(model="magic")


# ---------------------------------------------------------------- endurance
def test_wear_accumulates_and_sets_lifetime():
    c1 = write_cost([[0, 0], [0, 0]], [[3, 1], [0, 2]])
    c2 = write_cost([[3, 1], [0, 2]], [[0, 1], [0, 3]])
    wear = accumulate_wear([(0, c1), (0, c2), (1, c1)], 2, (3, 3))
    assert wear[0, :2, :2].tolist() == [[6, 1], [0, 3]] and wear[0, 2].sum() == 0
    writes = accumulate_wear([(0, c1), (0, c2)], 1, (2, 2), count="writes")
    assert writes[0].tolist() == [[2, 1], [0, 2]]
    # worst cell: 6 pulses per inference; 1e6 pulses at 10 inferences/s
    assert lifetime_s(wear, 10.0, 1e6) == pytest.approx(1e6 / 60, rel=1e-15)
    assert lifetime_s(np.zeros(3), 1.0, 1e6) == float("inf")
    with pytest.raises(ValueError, match="inference_rate_hz"):
        lifetime_s(wear, 0.0, 1e6)


# ---------------------------------------------------------------- schedules
def _tiny_acc(n_pe=1, per=1, parallel=None):
    # 2 x 4 crossbars of 2-bit cells, 4-bit weights (2 cells), 1 Hz clock, 1 s pulses
    return Accelerator(n_pe=n_pe, crossbars_per_pe=per, rows=2, cols=4, bits_per_cell=2, weight_bits=4,
                       compute_cycles=10, clock_hz=1.0, write=WriteParams(pulse_duration_s=1.0, pulse_energy_j=1.0),
                       write_parallelism=parallel, compute_energy_j=1.0, static_power_w=0.0)


def _tiny_net():
    # codes 0..15 on two 2-bit cells: 0b1101 = 13 -> [3, 1]; 0b0110 = 6 -> [1, 2]
    A = MappedLayer("A", np.array([[13, 0], [6, 1]]), windows=3)   # cells [[3,1,0,0],[1,2,0,1]]
    B = MappedLayer("B", np.array([[5, 5], [0, 15]]), windows=2)   # cells [[1,1,1,1],[0,0,3,3]]
    return MappedNetwork("tiny", (A, B))


def test_tiny_schedules_by_hand():
    net = _tiny_net()
    # one crossbar, from empty cells: write A (rows: 3 then 2 pulses = 5 s), compute A 30 s,
    # write B over A (rows: |[1,1,1,1]-[3,1,0,0]| max 2, |[0,0,3,3]-[1,2,0,1]| max 3 -> 5 s), compute B 20 s
    s = schedule(net, _tiny_acc(), "naive", initial="empty")
    assert s.latency_s == pytest.approx(60.0)
    assert s.pulses.tolist() == [8, 0, 12, 0]
    assert s.kind.tolist() == [WRITE, COMPUTE, WRITE, COMPUTE]
    assert s.compute_energy_j == 5.0 and s.write_energy_j == 20.0
    # two crossbars written in parallel: A and B from empty at t = 0 (A 5 s, B rows 1 then 3 = 4 s);
    # compute A 5..35 s, compute B after A: 35..55 s.  Naive fills crossbars from the first one,
    # so B overwrites A exactly as on one crossbar: 60 s.
    s2 = schedule(net, _tiny_acc(n_pe=2), "overlap", initial="empty")
    assert s2.latency_s == pytest.approx(55.0) and s2.naive_latency_s == pytest.approx(60.0)
    assert s2.speedup == pytest.approx(60 / 55)
    assert s2.lower_bound_s == pytest.approx((5 + 4) / 2)
    # one write at a time: B waits for A's write, 5..9 s; latency unchanged (B computes after A anyway)
    s3 = schedule(net, _tiny_acc(n_pe=2, parallel=1), "overlap", initial="empty")
    w = s3.kind == WRITE
    assert s3.start_s[w].tolist() == [0.0, 5.0] and s3.latency_s == pytest.approx(55.0)
    # replicating A on two crossbars: windows 2 + 1; both copies written at 0..5 s; compute 5..25 and 5..15;
    # B then waits for a free crossbar (25 s... no: the crossbar of the short copy frees at 15 s), written 15..19 s
    s4 = schedule(net, _tiny_acc(n_pe=2), "overlap", replication=(2, 1), initial="empty")
    c = s4.kind == COMPUTE
    assert sorted(s4.windows[c].tolist()) == [1, 2, 2]
    assert s4.latency_s == pytest.approx(25.0 + 20.0)


def test_steady_state_reuses_resident_tiles():
    net = _tiny_net()
    s = schedule(net, _tiny_acc(n_pe=2), "overlap", initial="steady")
    assert s.n_writes == 0 and s.n_pulses == 0      # both layers still on their crossbars
    assert s.latency_s == pytest.approx(50.0)


def _random_network(rng, n_layers):
    layers = []
    for i in range(n_layers):
        rows, outs = int(rng.integers(1, 70)), int(rng.integers(1, 40))
        layers.append(MappedLayer(f"L{i}", rng.integers(0, 256, (rows, outs)), int(rng.integers(1, 300))))
    return MappedNetwork("random", tuple(layers))


def _check_invariants(s, net, acc, empty):
    ev = list(zip(s.kind, s.crossbar, s.layer, s.tile, s.copy, s.start_s, s.end_s, s.windows))
    eps = 1e-12
    # per crossbar: intervals never overlap (no write while computing, one thing at a time)
    for x in np.unique(s.crossbar):
        iv = sorted((a, b) for k, xx, *_, a, b, _w in ev if xx == x)
        for (a0, b0), (a1, b1) in zip(iv, iv[1:]):
            assert a1 >= b0 - eps
    # a computation uses the tile last written into its crossbar, written before it starts
    for k, x, l, t, c, a, b, w in ev:
        if k != COMPUTE:
            continue
        before = [e for e in ev if e[1] == x and e[0] == WRITE and e[6] <= a + eps]
        if before:
            last = max(before, key=lambda e: e[6])
            assert (last[2], last[3]) == (l, t)
        else:
            assert not empty  # only a tile resident from the previous inference computes unwritten
    # every tile of every layer computes all its windows
    for li, L in enumerate(net.layers):
        for ti in range(len(L.tiles(acc))):
            tot = sum(w for k, x, l, t, c, a, b, w in ev if k == COMPUTE and l == li and t == ti)
            assert tot == L.windows * s.batch
        if li:
            prev_end = max(b for k, x, l, *_r, a, b, w in ev if k == COMPUTE and l == li - 1)
            start = min(a for k, x, l, *_r, a, b, w in ev if k == COMPUTE and l == li)
            assert start >= prev_end - eps
    # at most parallel_writes writes at any moment
    marks = sorted([(a, 1) for k, *_r, a, b, w in ev if k == WRITE] + [(b, -1) for k, *_r, a, b, w in ev if k == WRITE],
                   key=lambda m: (m[0], m[1]))
    level = 0
    for _, d in marks:
        level += d
        assert level <= acc.parallel_writes
    assert s.latency_s >= s.lower_bound_s * (1 - 1e-12)
    if s.policy == "naive":  # writes never overlap computations
        for k, *_r, a, b, w in ev:
            if k == WRITE:
                assert not any(k2 == COMPUTE and a2 < b - eps and b2 > a + eps for k2, *_q, a2, b2, w2 in ev)


def _replayed_pulses(s, net, acc):
    """Pulses recomputed by replaying the writes on empty crossbars (initial='empty')."""
    tiles = [L.tile_levels(acc) for L in net.layers]
    state = np.zeros((acc.n_crossbars, acc.rows, acc.cols), int)
    total = 0
    order = np.lexsort((s.start_s, s.crossbar))
    for i in order:
        if s.kind[i] != WRITE:
            continue
        lv = tiles[s.layer[i]][s.tile[i]]
        r, c = lv.shape
        total += int(np.abs(state[s.crossbar[i], :r, :c] - lv).sum())
        state[s.crossbar[i], :r, :c] = lv
    return total


@pytest.mark.parametrize("seed", range(12))
def test_schedule_invariants_on_random_networks(seed):
    rng = np.random.default_rng(seed)
    net = _random_network(rng, int(rng.integers(1, 6)))
    side = int(rng.choice([8, 16, 32]))
    acc = Accelerator(n_pe=int(rng.integers(1, 4)), crossbars_per_pe=int(rng.integers(1, 5)), rows=side, cols=side,
                      compute_cycles=int(rng.integers(1, 2000)),
                      write_parallelism=int(rng.integers(1, 4)) if rng.random() < 0.5 else None,
                      write=WriteParams(model="write_verify" if seed % 3 == 0 else "incremental", seed=seed))
    batch = int(rng.integers(1, 5))
    for initial in ("empty", "steady"):
        for policy, rep in (("naive", None), ("overlap", None), ("overlap", "auto")):
            s = schedule(net, acc, policy, replication=rep, batch=batch, initial=initial)
            _check_invariants(s, net, acc, initial == "empty")
            assert s.n_pulses == int(s.wear.sum())
            if initial == "empty" and acc.write.model == "incremental":
                assert s.n_pulses == _replayed_pulses(s, net, acc)
            elif initial == "empty":  # write-verify: at least one pulse per level step
                assert s.n_pulses >= _replayed_pulses(s, net, acc)


def test_comparison_picks_the_cheapest_centre_and_saves_pulses(rng):
    # two layers of bell-shaped codes centred at different places: re-encoding aligns their top cells
    a = np.clip(np.round(rng.normal(128, 12, (64, 32))), 0, 255).astype(int)
    b = np.clip(np.round(rng.normal(120, 12, (64, 32))), 0, 255).astype(int)
    c = np.clip(np.round(rng.normal(135, 12, (64, 32))), 0, 255).astype(int)
    net = MappedNetwork("bells", (MappedLayer("a", a, 10), MappedLayer("b", b, 10), MappedLayer("c", c, 10)))
    acc = Accelerator(n_pe=1, crossbars_per_pe=1, rows=64, cols=128)
    cmp = compare(net, acc)
    assert cmp.pulses_by_centre[cmp.centre] == min(cmp.pulses_by_centre.values())
    assert set(cmp.pulses_by_centre) == set(ARAS_CENTRES)
    assert cmp.reuse.n_pulses < cmp.replicated.n_pulses and cmp.pulses_saved > 0


# ---------------------------------------------------------------- partial weight reuse
def test_reencoding_decodes_exactly_without_clipping(rng):
    W = [rng.normal(0, 0.05, (30, 20)), rng.normal(0.01, 0.02, (50, 10)), rng.normal(-0.01, 0.08, (9, 4))]
    layers = []
    for i, w in enumerate(W):
        codes, lo, step = weight_codes(w, 8)
        codes = 64 + codes // 2  # codes in 64..191: any shift to a candidate centre stays in range
        layers.append(MappedLayer(f"l{i}", codes, 1, lo, step))
    net = MappedNetwork("n", tuple(layers))
    for centre in ARAS_CENTRES:
        re = reencode(net, centre)
        assert re.layers[0] is net.layers[0]          # the first layer is not shifted
        for a, b in zip(net.layers[1:], re.layers[1:]):
            assert layer_centre(b.codes) == centre
            assert np.array_equal(b.weights, a.weights)  # exact, not approximately equal
        assert n_clipped(net, re) == 0


def test_reencoding_clips_at_the_code_range():
    L0 = MappedLayer("first", np.array([[0, 1]]), 1)
    L1 = MappedLayer("wide", np.array([[0, 10, 20, 250, 255]]), 1, lo=-1.0, step=0.01)  # median 20
    re = reencode(MappedNetwork("n", (L0, L1)), 160)
    assert re.layers[1].shift == 140 and re.layers[1].codes.tolist() == [[140, 150, 160, 255, 255]]
    assert n_clipped(MappedNetwork("n", (L0, L1)), re) == 2
    with pytest.raises(ValueError, match="centre must be an integer code in 0..255"):
        reencode(MappedNetwork("n", (L0, L1)), 300)


def test_schedule_rejects_bad_input():
    net = _tiny_net()
    with pytest.raises(ValueError, match="policy"):
        schedule(net, _tiny_acc(), "greedy")
    with pytest.raises(ValueError, match="batch"):
        schedule(net, _tiny_acc(), batch=0)
    with pytest.raises(ValueError, match="replication needs 2 factors"):
        schedule(net, _tiny_acc(), replication=(1,))
    with pytest.raises(ValueError, match="naive schedule does not replicate"):
        schedule(net, _tiny_acc(), "naive", replication="auto")
    with pytest.raises(ValueError, match="n_pe"):
        Accelerator(n_pe=0)


def test_timeline_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    s = schedule(_tiny_net(), _tiny_acc(n_pe=2), initial="empty")
    ax = s.plot()
    assert len(ax.collections) == 4  # writes and computations of two crossbars
    ax.figure.savefig(tmp_path / "t.png")
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


# ---------------------------------------------------------------- model mapping and docs
def test_map_model_of_the_mnist_cnn():
    from xbarsolve.cnn import mnist_cnn4
    from xbarsolve.program import map_model, with_weights

    model = mnist_cnn4()
    net = map_model(model)
    assert [(L.name, L.shape, L.windows) for L in net.layers] == [
        ("conv1", (25, 20), 24 * 24), ("conv2", (500, 50), 8 * 8), ("conv3", (800, 500), 1), ("conv4", (500, 10), 1)]
    acc = Accelerator()
    # tiles: ceil(rows / 128) x ceil(outputs / 32)
    assert net.n_tiles(acc) == 1 * 1 + 4 * 2 + 7 * 16 + 4 * 1
    q = with_weights(model, net)
    for nd, L in zip(q.linear_nodes, net.layers):
        assert np.array_equal(nd.layer.weight_matrix, L.weights)
        assert np.abs(nd.layer.weight_matrix - model.node(nd.name).layer.weight_matrix).max() <= L.step / 2 * (1 + 1e-9)


def test_docs_examples_run(tmp_path, monkeypatch):
    import re

    from conftest import ROOT

    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "program.md").read_text(), flags=re.S)
    assert len(blocks) == 1
    ns: dict = {}
    exec(compile(blocks[0], "docs/program.md", "exec"), ns)
    assert ns["c"].n_pulses == 9 and ns["cmp"].reuse.n_pulses <= ns["cmp"].replicated.n_pulses


def test_map_model_folds_batchnorm_before_quantizing(rng):
    from xbarsolve.cnn.layers import BatchNorm, Dense, Model, Node
    from xbarsolve.program import map_model, with_weights

    W = rng.normal(0, 0.3, (6, 3))
    bn = BatchNorm(np.array([1.0, 2.0, 0.5]), np.array([0.1, -0.2, 0.0]), np.zeros(3), np.array([1.0, 1e-6, 4.0]), 1e-3)
    model = Model((Node("fc", Dense(W, np.zeros(3))), Node("bn", bn, ("fc",))), (6,), "fc-bn")
    x = rng.normal(0, 1, (20, 6))
    net = map_model(model)
    assert net.folded and not map_model(model, fold_bn=False).folded
    q = with_weights(model, net)
    assert not any(isinstance(nd.layer, BatchNorm) for nd in q.nodes)
    assert np.array_equal(q.node("fc").layer.kernel, net.layers[0].weights)
    # folded INT8: each output off by at most sum_i |x_i| * step / 2 (rounding of every weight)
    bound = np.abs(x).sum(axis=1, keepdims=True) * net.layers[0].step / 2
    assert np.all(np.abs(q.forward(x) - model.forward(x)) <= bound * (1 + 1e-9) + 1e-12)


def test_program_is_a_lazy_and_light_subpackage():
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys, xbarsolve as xs; assert 'xbarsolve.program' not in sys.modules; "
            "xs.program.write_cost; heavy = [m for m in ('matplotlib', 'xbarsolve.cnn', 'torch', 'dask', 'h5py') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.stdout.strip() == "[]"
