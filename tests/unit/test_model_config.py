"""The decoder config (edgefirst.yaml / --edgefirst-config), as a hostile or careless hand would write it.

Every bad value is one ModelError naming the key (never a traceback), and nothing is accepted that
would decode wrongly later: a string "false" is not true, a zero or non-finite scale is no scale.
"""

from __future__ import annotations

import pytest

from edgenode.core.model_config import MAX_CONFIG_CHARS, ModelError, parse_config_text

DET = "type: detection"


def parse(text: str) -> object:
    return parse_config_text(text, "edgefirst.yaml")


@pytest.mark.parametrize(("text", "message"), [
    (f"outputs: [{{{DET}, dshape: 5}}]", "outputs[0] dshape must be a list of {name: size} or [name, size], got 5"),
    (f"outputs: [{{{DET}, dshape: [{{batch: x}}]}}]", "outputs[0] dshape batch must be a whole number 0..2147483647, "
                                                      "got 'x'"),
    (f"outputs: [{{{DET}, dshape: [{{batch: null}}]}}]", "outputs[0] dshape batch must be a whole number "
                                                         "0..2147483647, got None"),
    (f"outputs: [{{{DET}, dshape: [{{batch: true}}]}}]", "dshape batch must be a whole number"),
    (f"outputs: [{{{DET}, dshape: [{{batch: 1.5}}]}}]", "dshape batch must be a whole number"),
    (f"outputs: [{{{DET}, dshape: [[batch, 1, 2]]}}]", "dshape must be a list of {name: size} or [name, size]"),
    (f"outputs: [{{{DET}, dshape: {{batch: 1}}}}]", "dshape must be a list"),
    (f"outputs: [{{{DET}, shape: '184'}}]", "outputs[0] shape must be a list of whole numbers 0..2147483647 "
                                            "(at most 8), got '184'"),
    (f"outputs: [{{{DET}, shape: [1, 1e40]}}]", "shape must be a list of whole numbers"),
    (f"outputs: [{{{DET}, shape: [1, -84]}}]", "shape must be a list of whole numbers"),
    (f"outputs: [{{{DET}, normalized: 'false'}}]", "outputs[0] normalized must be true or false, got 'false'"),
    (f"outputs: [{{{DET}, normalized: 0}}]", "normalized must be true or false, got 0"),
    (f"outputs: [{{{DET}, quantization: [0, 0]}}]", "outputs[0] quantization scale must be a finite number above 0, "
                                                    "got 0"),
    (f"outputs: [{{{DET}, quantization: [.nan, 0]}}]", "quantization scale must be a finite number above 0, got nan"),
    (f"outputs: [{{{DET}, quantization: [-1, 0]}}]", "quantization scale must be a finite number above 0, got -1"),
    (f"outputs: [{{{DET}, quantization: [.inf, 0]}}]", "quantization scale must be a finite number above 0"),
    (f"outputs: [{{{DET}, quantization: [0.5, 0.5]}}]", "quantization zero point must be a whole number "
                                                        "-2147483648..2147483647, got 0.5"),
    (f"outputs: [{{{DET}, quantization: [0.5, 1e40]}}]", "quantization zero point must be a whole number"),
    (f"outputs: [{{{DET}, quantization: ['0.5', 0]}}]", "quantization scale must be a finite number above 0"),
    (f"outputs: [{{{DET}, quantization: [0.5, 0, 1]}}]", "quantization must be [scale, zero_point]"),
    (f"outputs: [{{{DET}, anchors: [[.nan, 1]]}}]", "anchors must be a list of [width, height] pairs of finite "
                                                    "numbers above 0"),
    (f"outputs: [{{{DET}, anchors: [[0, 1]]}}]", "anchors must be a list of [width, height] pairs"),
    (f"outputs: [{{{DET}, anchors: 7}}]", "anchors must be a list of [width, height] pairs"),
    (f"outputs: [{{{DET}, name: [1]}}]", "outputs[0] name must be text, got [1]"),
    (f"outputs: [{{{DET}, type: [detection]}}]", "type must be one of"),
    ("outputs: " + "[" * 5000 + "]" * 5000, "is not valid YAML"),  # nesting deep enough to exhaust the stack
    ("outputs: {type: detection}", "no 'outputs' list"),
    ("outputs: [" + ", ".join(["{type: detection}"] * 65) + "]", "has 65 outputs; at most 64"),
    ("x" * (MAX_CONFIG_CHARS + 1), f"is larger than {MAX_CONFIG_CHARS} characters"),
])
def test_bad_values_are_one_error_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_deeply_nested_json_is_an_error_too() -> None:
    with pytest.raises(ModelError, match="is not valid JSON"):
        parse_config_text('{"outputs": ' + "[" * 100000 + "]" * 100000 + "}", "x.json", json_format=True)


def test_good_values_still_parse() -> None:
    config = parse_config_text(
        "outputs:\n"
        "  - {type: detection, dshape: [{batch: 1}, [num_features, 84], {num_boxes: 8400}], normalized: false,\n"
        "     quantization: [0.0042, -128], anchors: [[0.05, 0.07]], name: out0}\n"
        "  - {type: protos, shape: [1, 160, 160, 32], normalized: true, quantization: [1, 0]}\n", "edgefirst.yaml")
    first, second = config.outputs
    assert first.shape == (1, 84, 8400) and first.dims == ("batch", "num_features", "num_boxes")
    assert first.normalized is False and second.normalized is True
    assert first.quantization == (0.0042, -128) and second.quantization == (1.0, 0)
    assert first.anchors == ((0.05, 0.07),) and first.name == "out0"
