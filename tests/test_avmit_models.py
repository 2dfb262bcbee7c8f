"""AVMIT classifier and SAVC: Table 5 parameter counts, Keras semantics, registry, save/load, pair sampling."""

from collections import Counter

import numpy as np
import pytest
import torch

import avperceive
from avperceive.models.avmit import AVMIT_LABELS, AVMIT_TABLE5, EMBEDDING_DIMS, AVMITClassifier, trainable_parameters
from avperceive.models.savc import SAVC_PARAMS, SAVCModel, savc_pairs

PYTORCH_COUNTS = {  # seeds-spec §1.3: the same configurations with PyTorch's double-bias RNNs
    ("yamnet-effnetb0", "frnn"): 675_600,
    ("yamnet-effnetb0", "gru"): 248_976,
    ("yamnet-effnetb0", "lstm"): 740_368,
    ("vggish-vgg16", "frnn"): 366_608,
    ("vggish-vgg16", "gru"): 413_968,
    ("vggish-vgg16", "lstm"): 957_968,
}


@pytest.mark.parametrize("emb,rnn", list(AVMIT_TABLE5), ids=[f"{r}-{e}" for e, r in AVMIT_TABLE5])
def test_table5_trainable_parameters(emb, rnn):
    hp = AVMIT_TABLE5[(emb, rnn)]
    a, v = EMBEDDING_DIMS[emb]
    kw = {k: x for k, x in hp.items() if k != "params"}
    keras = AVMITClassifier(a, v, rnn, keras_compatible=True, **kw)
    assert trainable_parameters(keras) == hp["params"]
    assert trainable_parameters(AVMITClassifier(a, v, rnn, **kw)) == PYTORCH_COUNTS[(emb, rnn)]
    registered = avperceive.create_model(f"avmit-{rnn}-{emb}")
    assert trainable_parameters(registered) == hp["params"]


def test_table5_literal_values():
    assert [AVMIT_TABLE5[k]["params"] for k in AVMIT_TABLE5] == [675472, 248976, 740112, 366352, 413968, 956944]


@pytest.mark.parametrize("emb,rnn", list(SAVC_PARAMS))
def test_savc_trainable_parameters(emb, rnn):
    a, v = EMBEDDING_DIMS[emb]
    assert trainable_parameters(SAVCModel(a, v, rnn=rnn, keras_compatible=True)) == SAVC_PARAMS[(emb, rnn)]


def test_keras_compatible_rnn_bias_is_zero_and_frozen():
    m = AVMITClassifier(16, 24, "lstm", rnn_units=8, bottleneck=4, keras_compatible=True)
    assert m.rnn.rnn.bias_hh_l0.abs().sum() == 0 and not m.rnn.rnn.bias_hh_l0.requires_grad
    assert m.audio_squeeze.norm.momentum == 0.01 and m.audio_squeeze.norm.eps == 1e-3
    g = AVMITClassifier(16, 24, "gru", rnn_units=8, bottleneck=4, keras_compatible=True)
    assert g.rnn.rnn.bias_hh_l0.requires_grad  # GRU reset-after keeps two biases


def test_forward_shapes_and_keras_input_dropout():
    torch.manual_seed(0)
    m = avperceive.create_model("avmit-gru-tiny", dropout=0.5)
    a, v = torch.randn(4, 7, 16), torch.randn(4, 7, 24)
    assert m(v, a).shape == (4, 16)
    m.eval()
    torch.testing.assert_close(m(v, a), m(v, a))
    # one dropout mask per sequence, reused at every step
    x = torch.ones(3, 5, 16)
    seen = {}
    def grab(mod, inp, out):
        seen["x"] = inp[0]

    m.rnn.rnn.register_forward_hook(grab)
    m.rnn.train()
    m.rnn(x)
    dropped = seen["x"]
    # exact: inputs of 1 times a 0/1 mask divided by keep = 0.5 gives exactly 0 or 2
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))
    assert set(dropped.unique().tolist()) <= {0.0, 2.0} and (dropped == 0).any()
    with pytest.raises(ValueError, match=r"\(B, T, 16\)"):
        m(torch.randn(2, 7, 15), torch.randn(2, 7, 24))


def test_registry_and_save_load(tmp_path):
    names = avperceive.list_models("avmit-*")
    assert {"avmit-frnn-yamnet-effnetb0", "avmit-lstm-vggish-vgg16", "avmit-gru-tiny", "avmit-lstm-tiny"} <= set(names)
    assert len(names) == 9
    assert len([n for n in avperceive.list_models("savc-*")]) == 7
    cfg = avperceive.models.get_pretrained_cfg("avmit-gru-yamnet-effnetb0")
    assert cfg.input["task"] == "clip-classification" and cfg.label_names == AVMIT_LABELS and cfg.hub_id is None
    assert avperceive.models.get_pretrained_cfg("savc-tiny").input["task"] == "av-correspondence"
    m = avperceive.create_model("avmit-gru-tiny").eval()
    m.save_pretrained(tmp_path / "m")
    back = AVMITClassifier.from_pretrained(str(tmp_path / "m")).eval()
    a, v = torch.randn(2, 7, 16), torch.randn(2, 7, 24)
    torch.testing.assert_close(back(v, a), m(v, a))
    s = avperceive.create_model("savc-tiny").eval()
    s.save_pretrained(tmp_path / "s")
    torch.testing.assert_close(SAVCModel.from_pretrained(str(tmp_path / "s")).eval()(v, a), s(v, a))


def test_savc_distance_hand_worked():
    m = SAVCModel(2, 2, hidden=2, rnn="frnn", rnn_units=2, dropout=0.0)
    with torch.no_grad():
        for net in (m.audio_net, m.visual_net):
            for layer in (net[0], net[2]):
                layer.weight.copy_(torch.eye(2))
                layer.bias.zero_()
    a = torch.tensor([[[3.0, 4.0], [1.0, 0.0]]])
    v = torch.tensor([[[0.0, 2.0], [5.0, 0.0]]])
    d = m.distances(v, a)
    # step 0: (0.6, 0.8) vs (0, 1) -> sqrt(0.36 + 0.04); step 1: identical -> sqrt(1e-7)
    torch.testing.assert_close(d[0, :, 0], torch.tensor([0.4**0.5, 1e-7**0.5]))
    assert m(v, a).shape == (1, 2)


def test_savc_pairs_balanced_and_reshuffled():
    labels = np.repeat(np.arange(16), 15)  # 15 per class: divisible by the 15 other classes
    a, v, t = savc_pairs(labels, seed=1, epoch=0)
    assert len(a) == 2 * 240 and t.tolist() == [1, 0] * 240
    assert (labels[a[t == 1]] == labels[v[t == 1]]).all()
    assert (labels[a[t == 0]] != labels[v[t == 0]]).all()
    assert Counter(labels[a[t == 1]].tolist()) == {c: 15 for c in range(16)}
    # each audio class meets every other class exactly once among its 15 non-corresponding pairs
    for c in range(16):
        partners = Counter(labels[v[(t == 0) & (labels[a] == c)]].tolist())
        assert partners == {o: 1 for o in range(16) if o != c}
    intact = (a[t == 1] == v[t == 1]).sum()
    assert intact == 240  # first draw = the video's own pair
    a1, v1, _ = savc_pairs(labels, seed=1, epoch=1)
    a0, v0, _ = savc_pairs(labels, seed=1, epoch=0)
    assert (a0 == a).all() and (v0 == v).all()
    assert not ((a1 == a).all() and (v1 == v).all())
    a2, v2, t2 = savc_pairs(labels, pairs_per_video=3, seed=0)
    assert len(a2) == 2 * 3 * 240 and (a2[t2 == 1] != v2[t2 == 1]).any()


# -- forward values against the Keras equations, in numpy ------------------------------------------------
# The model claims Keras semantics (module doc): squeeze unit = Dense (the 1x1 Conv2D) -> BatchNormalization
# (epsilon 1e-3) -> relu | swish per modality, audio then visual concatenated, one recurrent layer whose last
# state feeds Dense(16). The recurrences below are the Keras layer formulas written out with Keras' own weight
# layout: kernel (in, k * units) / recurrent_kernel (units, k * units), gate columns in Keras order
# (LSTM: i, f, c, o; GRU: z, r, h with reset_after=True, i.e. bias (2, 3 * units) = input and recurrent bias,
# and the reset gate applied after the recurrent matmul). Only the conversion of PyTorch's packed tensors
# into that layout uses PyTorch's documented gate order (LSTM: i, f, g, o; GRU: r, z, n).


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _keras_squeeze(x, kernel, bias, gamma, beta, mean, var, activation):
    y = x @ kernel + bias  # Dense == Conv2D 1x1 on (T, 1, C)
    y = gamma * (y - mean) / np.sqrt(var + 1e-3) + beta  # BatchNormalization at inference, epsilon 1e-3
    return np.maximum(y, 0.0) if activation == "relu" else y * _sigmoid(y)  # swish = x * sigmoid(x)


def _keras_simple_rnn(x, kernel, recurrent, bias):
    h = np.zeros((x.shape[0], recurrent.shape[0]))
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ kernel + h @ recurrent + bias)
    return h


def _keras_lstm(x, kernel, recurrent, bias):
    units = recurrent.shape[0]
    h = c = np.zeros((x.shape[0], units))
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * units:(k + 1) * units] for k in range(4))  # Keras: i, f, c, o
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    return h


def _keras_gru_reset_after(x, kernel, recurrent, bias):
    units = recurrent.shape[0]
    h = np.zeros((x.shape[0], units))
    split = lambda m: [m[..., k * units:(k + 1) * units] for k in range(3)]  # noqa: E731  Keras: z, r, h
    (kz, kr, kh), (rz, rr, rh) = split(kernel), split(recurrent)
    (bz, br, bh), (bz_rec, br_rec, bh_rec) = split(bias[0]), split(bias[1])
    for t in range(x.shape[1]):
        xt = x[:, t]
        z = _sigmoid(xt @ kz + bz + h @ rz + bz_rec)
        r = _sigmoid(xt @ kr + br + h @ rr + br_rec)
        hh = np.tanh(xt @ kh + bh + r * (h @ rh + bh_rec))
        h = z * h + (1.0 - z) * hh
    return h


def _keras_weights_from(rnn, kind):
    """PyTorch's packed RNN tensors -> Keras (kernel, recurrent_kernel, bias)."""
    w_ih, w_hh = rnn.weight_ih_l0.detach().numpy(), rnn.weight_hh_l0.detach().numpy()
    b_ih, b_hh = rnn.bias_ih_l0.detach().numpy(), rnn.bias_hh_l0.detach().numpy()
    if kind == "gru":
        units = w_hh.shape[1]
        order = lambda m: np.concatenate([m[units:2 * units], m[:units], m[2 * units:]])  # noqa: E731  r,z,n -> z,r,h
        return order(w_ih).T, order(w_hh).T, np.stack([order(b_ih), order(b_hh)])
    return w_ih.T, w_hh.T, b_ih + b_hh  # SimpleRNN / LSTM (i, f, g, o == i, f, c, o): one bias (b_hh is 0 here)


@pytest.mark.parametrize("kind", ["frnn", "gru", "lstm"])
@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_forward_matches_numpy_keras_equations(kind, activation):
    torch.manual_seed(0)
    model = AVMITClassifier(audio_dim=6, visual_dim=5, rnn=kind, rnn_units=4, bottleneck=3, activation=activation,
                            dropout=0.5, num_classes=7, keras_compatible=True).double()
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine, and (GRU) a recurrent bias
        for unit in (model.audio_squeeze, model.visual_squeeze):
            unit.norm.running_mean.uniform_(-0.5, 0.5)
            unit.norm.running_var.uniform_(0.5, 2.0)
            unit.norm.weight.uniform_(0.5, 1.5)
            unit.norm.bias.uniform_(-0.3, 0.3)
        if kind == "gru":
            model.rnn.rnn.bias_hh_l0.uniform_(-0.5, 0.5)
    model.eval()
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(3, 7, 6, generator=g, dtype=torch.float64)
    visual = torch.randn(3, 7, 5, generator=g, dtype=torch.float64)
    with torch.no_grad():
        ours = model(video=visual, audio=audio).numpy()

    def squeeze(unit, x):
        n = unit.norm
        return _keras_squeeze(x, unit.proj.weight.detach().numpy().T, unit.proj.bias.detach().numpy(),
                              n.weight.detach().numpy(), n.bias.detach().numpy(), n.running_mean.numpy(),
                              n.running_var.numpy(), activation)

    seq = np.concatenate([squeeze(model.audio_squeeze, audio.numpy()), squeeze(model.visual_squeeze, visual.numpy())],
                         axis=-1)
    recurrence = {"frnn": _keras_simple_rnn, "gru": _keras_gru_reset_after, "lstm": _keras_lstm}[kind]
    last = recurrence(seq, *_keras_weights_from(model.rnn.rnn, kind))
    want = last @ model.classifier.weight.detach().numpy().T + model.classifier.bias.detach().numpy()
    assert ours.shape == want.shape == (3, 7)
    np.testing.assert_allclose(ours, want, rtol=0, atol=1e-12)  # float64 on both sides: rounding only
