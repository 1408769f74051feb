"""GroupedMuon (batched Newton-Schulz) against keras.optimizers.Muon: the same variables after several steps."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfapp import muon


def _model():
    """Square, wide and tall kernels (the tall one is transposed into the wide one's group), vectors, an
    embedding and an excluded output layer: every path of the optimizer."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(11, 8, name="token_embedding")(tokens)
    x = keras.layers.Dense(8, name="square_a")(x)
    x = keras.layers.Dense(8, name="square_b")(x)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Dense(32, activation="gelu", name="wide")(x)
    x = keras.layers.Dense(8, name="tall")(x)
    return keras.Model(tokens, keras.layers.Dense(11, name="logits")(x))


def _train(optimizer_class, compiled, steps=4):
    model = _model()
    optimizer = optimizer_class(keras.optimizers.schedules.CosineDecay(0.0, 10, warmup_target=0.01, warmup_steps=2),
                                adam_beta_2=0.99, weight_decay=None, adam_weight_decay=None,
                                exclude_layers=["^logits/"])
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.integers(0, 11, (4, 6)), tf.int32)
    y = tf.constant(rng.integers(0, 11, (4, 6)), tf.int32)

    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    step = tf.function(step, jit_compile=True) if compiled else step
    for _ in range(steps):
        step()
    return {v.path: v.numpy() for v in model.trainable_variables}, [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "xla"])
def test_grouped_muon_matches_keras_muon(compiled, monkeypatch):
    expected, expected_slots = _train(keras.optimizers.Muon, compiled)
    grouped, calls = muon.GroupedMuon._grouped_update, []
    monkeypatch.setattr(muon.GroupedMuon, "_grouped_update", lambda *args: calls.append(1) or grouped(*args))
    got, got_slots = _train(muon.GroupedMuon, compiled)
    assert calls  # the batched path ran, not Keras's per-variable one
    assert expected.keys() == got.keys()
    for path in expected:
        np.testing.assert_allclose(got[path], expected[path], rtol=1e-4, atol=1e-5, err_msg=path)
    assert len(got_slots) == len(expected_slots)
    for got_slot, expected_slot in zip(got_slots, expected_slots):
        np.testing.assert_allclose(got_slot, expected_slot, rtol=1e-4, atol=1e-5)
    initial, _ = _train(muon.GroupedMuon, compiled, steps=0)
    assert not np.allclose(got["square_a/kernel"], initial["square_a/kernel"])  # it trained


def test_grouped_muon_falls_back_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _model()
        optimizer = muon.GroupedMuon(0.01, weight_decay=None, adam_weight_decay=None)
        optimizer.build(model.trainable_variables)
    assert muon._distributed(model.trainable_variables)
    assert not muon._distributed(_model().trainable_variables)
