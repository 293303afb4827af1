"""The one latency prediction path (:mod:`ofa_profile.calibration`): its scalar form (``Lut.predict_ms``) and its
batch form (what the search calls) against figures worked out by hand from a tiny LUT and calibration written
here, against each other on many random subnets, and one message for what they cannot predict."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_profile.calibration import apply_calibration, batch_predictor, features, predict_ms
from ofa_profile.encodings import ArchArrays
from ofa_profile.errors import LutMissError, OfaProfileError
from ofa_profile.latency import lut_latency_fn
from ofa_profile.lut import Lut, LutEntry, load_lut
from ofa_profile.ops import ops_at_resolution
from ofa_profile.space import SubnetSpec, get_space

W10 = "ofa-mbv3-w1.0"
HEAD_10 = "Logits-input:1x1x1280-output:10"

# The ops of W10's smallest subnet at r=160 (stem, first block, head: the fixed part; then two blocks a stage),
# each with a figure chosen here.  Every other key of r=160 costs 0 ms, so the hand sums below hold only if the
# prediction reads exactly these keys.
FIXED = {"Conv-input:160x160x3-output:80x80x16": 0.5,
         "expanded_conv-input:80x80x16-output:80x80x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0": 0.2,
         "Conv_1-input:5x5x160-output:5x5x960": 0.1,
         "AvgPool2D-input:5x5x960-output:1x1x960": 0.05,
         "Conv_2-input:1x1x960-output:1x1x1280": 0.1,
         "Logits-input:1x1x1280-output:1000": 0.05}                                          # fixed part: 1.0 ms
STAGES = [{"expanded_conv-input:80x80x16-output:40x40x24-expand:48-kernel:3-stride:2-idskip:0-se:0-hs:0": 0.3,
           "expanded_conv-input:40x40x24-output:40x40x24-expand:72-kernel:3-stride:1-idskip:1-se:0-hs:0": 0.2},
          {"expanded_conv-input:40x40x24-output:20x20x40-expand:72-kernel:3-stride:2-idskip:0-se:1-hs:0": 0.4,
           "expanded_conv-input:20x20x40-output:20x20x40-expand:120-kernel:3-stride:1-idskip:1-se:1-hs:0": 0.1},
          {"expanded_conv-input:20x20x40-output:10x10x80-expand:120-kernel:3-stride:2-idskip:0-se:0-hs:1": 0.6,
           "expanded_conv-input:10x10x80-output:10x10x80-expand:240-kernel:3-stride:1-idskip:1-se:0-hs:1": 0.4},
          {"expanded_conv-input:10x10x80-output:10x10x112-expand:240-kernel:3-stride:1-idskip:0-se:1-hs:1": 0.3,
           "expanded_conv-input:10x10x112-output:10x10x112-expand:336-kernel:3-stride:1-idskip:1-se:1-hs:1": 0.2},
          {"expanded_conv-input:10x10x112-output:5x5x160-expand:336-kernel:3-stride:2-idskip:0-se:1-hs:1": 0.7,
           "expanded_conv-input:5x5x160-output:5x5x160-expand:480-kernel:3-stride:1-idskip:1-se:1-hs:1": 0.3}]
# stage sums 0.5 0.5 1.0 0.5 1.0; LUT sum of the smallest subnet 4.5 ms

# z = (x - mean) / scale: fixed (1.0 - 0.5) / 0.5 = 1; stages as they are; n_blocks / 10; r_norm weighs 0
CALIBRATION = {"format": "ridge-v1", "model": "ridge",
               "feature_names": ["fixed_ms", "stage1_ms", "stage2_ms", "stage3_ms", "stage4_ms", "stage5_ms",
                                 "n_blocks", "r_norm"],
               "feature_mean": [0.5, 0, 0, 0, 0, 0, 0, 0], "feature_scale": [0.5, 1, 1, 1, 1, 1, 10, 1],
               "coef": [2.0, 1, 1, 1, 1, 1, 0.5, 0], "intercept": 0.25, "classes": 1000}


def tiny_lut(calibration=CALIBRATION) -> Lut:
    ms = {op.key: 0.0 for op in ops_at_resolution(W10, 160)}
    for part in (FIXED, *STAGES):
        ms.update(part)
    ms[HEAD_10] = 0.01
    return Lut(space=W10, device="hand", runtime="onnxruntime", resolutions=(160,), calibration=calibration,
               entries={k: LutEntry(median_ms=v, iqr_ms=0.0, count=5) for k, v in ms.items()})


SMALLEST = get_space(W10).smallest(160)
# stage 3 one block deeper: its third block (80 -> 80 channels, e3) is the key of its second once more
DEEPER = SubnetSpec(W10, SMALLEST.ks, SMALLEST.e, (2, 2, 3, 2, 2), 160).validated()


@pytest.mark.parametrize("spec,want_features,want_ms,want_sum", [
    # 0.25 + 2*1 + (0.5 + 0.5 + 1.0 + 0.5 + 1.0) + 0.5 * 10/10
    (SMALLEST, [1.0, 0.5, 0.5, 1.0, 0.5, 1.0, 10, 160 / 224], 6.25, 4.5),
    # 0.25 + 2*1 + (0.5 + 0.5 + 1.4 + 0.5 + 1.0) + 0.5 * 11/10
    (DEEPER, [1.0, 0.5, 0.5, 1.4, 0.5, 1.0, 11, 160 / 224], 6.70, 4.9),
])
def test_both_forms_predict_the_hand_worked_figures(spec, want_features, want_ms, want_sum):
    lut = tiny_lut()
    assert features(spec, lut) == pytest.approx(want_features, abs=1e-12)
    a = ArchArrays.from_specs([spec])
    assert lut.predict_ms(spec) == pytest.approx(want_ms, abs=1e-12)
    assert batch_predictor(lut)(a)[0] == pytest.approx(want_ms, abs=1e-12)
    assert lut_latency_fn(lut)([spec])[0] == pytest.approx(want_ms, abs=1e-12)
    assert lut.predict_ms(spec, calibrated=False) == pytest.approx(want_sum, abs=1e-12)
    assert batch_predictor(lut, calibrated=False)(a)[0] == pytest.approx(want_sum, abs=1e-12)
    # the same LUT predicting a 10-class head: calibrated on 1000 classes, so the two heads' difference moves it
    ten = lut.with_classes(10)
    assert ten.predict_ms(spec) == pytest.approx(want_ms - (0.05 - 0.01), abs=1e-12)
    assert batch_predictor(ten)(a)[0] == pytest.approx(want_ms - 0.04, abs=1e-12)
    assert ten.predict_ms(spec, calibrated=False) == pytest.approx(want_sum - 0.04, abs=1e-12)
    # a calibration measured on the 10-class head, the LUT predicting its own (1000): the difference added
    cal10 = tiny_lut({**CALIBRATION, "classes": 10})
    assert features(spec, cal10)[0] == pytest.approx(want_features[0] - 0.04, abs=1e-12)
    want10 = want_ms - 2 * 0.04 / 0.5 + 0.04      # its fixed feature 0.04 lighter (coef 2, scale 0.5), head +0.04
    assert cal10.predict_ms(spec) == pytest.approx(want10, abs=1e-12)
    assert batch_predictor(cal10)(a)[0] == pytest.approx(want10, abs=1e-12)


def _subnets(sp, resolutions):
    """Hypothesis strategy: a batch of subnets of ``sp`` at ``resolutions`` (every field drawn independently)."""
    one = st.builds(
        lambda d, ks, e, r: SubnetSpec(sp.name, tuple(ks), tuple(e), tuple(d), r),
        st.tuples(*(st.sampled_from(sp.stage_depths(s)) for s in range(sp.n_stages))),
        st.lists(st.sampled_from(sp.kernels), min_size=sp.n_blocks, max_size=sp.n_blocks),
        st.lists(st.sampled_from(sp.expands), min_size=sp.n_blocks, max_size=sp.n_blocks),
        st.sampled_from(resolutions))
    return st.lists(one, min_size=1, max_size=40)


def _with_head_10(lut):
    return lut.with_entries({**lut.entries, HEAD_10: LutEntry(median_ms=0.01, iqr_ms=0.0, count=5)}).with_classes(10)


@pytest.mark.parametrize("which", ["cpu-ort", "cpu-tflite", "cpu-ort-head10", "tiny"])
def test_the_batch_form_equals_the_scalar_form_on_random_subnets(which):
    lut = tiny_lut() if which == "tiny" else load_lut(which.removesuffix("-head10"))
    if which.endswith("-head10"):
        lut = _with_head_10(lut)
    assert lut.calibration
    forms = {cal: batch_predictor(lut, calibrated=cal) for cal in (True, False)}

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_subnets(get_space(lut.space), lut.resolutions), st.booleans())
    def check(specs, calibrated):
        got = forms[calibrated](ArchArrays.from_specs(specs))
        want = [predict_ms(lut, s, calibrated) for s in specs]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    check()


def test_a_subnet_the_lut_cannot_predict_gets_one_message_from_both_forms():
    lut = load_lut("cpu-ort")
    high = get_space(W10).largest(224)
    high = SubnetSpec(W10, high.ks, high.e, high.d, 260)    # a resolution the shipped LUT lacks
    with pytest.raises(LutMissError) as scalar:
        lut.predict_ms(high)
    for calibrated in (True, False):
        with pytest.raises(LutMissError) as batch:
            lut_latency_fn(lut, calibrated=calibrated)([high])
        assert str(batch.value) == str(scalar.value)
    assert "at r=260" in str(scalar.value) and "--resolutions 260" in str(scalar.value)
    # the features of a subnet the LUT lacks keys of: the same message
    with pytest.raises(LutMissError) as feats:
        features(high, lut)
    assert str(feats.value) == str(scalar.value)
    # tables asked for at resolutions the LUT lacks keys of: the same message, naming every missing key's count
    with pytest.raises(LutMissError, match=r"lacks \d+ key\(s\) at r=240,260"):
        batch_predictor(lut, resolutions=[224, 240, 260])


def test_a_calibration_this_version_cannot_apply_is_one_message_from_both_forms():
    spec = SMALLEST
    for bad in ({**CALIBRATION, "format": "ridge-v0"}, {**CALIBRATION, "feature_names": ["a"] * 8}):
        lut = tiny_lut(bad)
        with pytest.raises(OfaProfileError) as scalar:
            lut.predict_ms(spec)
        with pytest.raises(OfaProfileError) as batch:
            lut_latency_fn(lut)
        with pytest.raises(OfaProfileError) as direct:
            apply_calibration(bad, spec, lut)
        assert str(scalar.value) == str(batch.value) == str(direct.value)
        assert "cannot be applied" in str(scalar.value) and "--no-calibration" in str(scalar.value)
        # the plain LUT sums still work, both forms
        assert lut.predict_ms(spec, calibrated=False) == pytest.approx(4.5, abs=1e-12)
        assert lut_latency_fn(lut, calibrated=False)([spec])[0] == pytest.approx(4.5, abs=1e-12)

