"""A direct .tflite writer for the modules of :mod:`ofa_profile.blocks` (no TensorFlow, no converter).

:func:`write_tflite` walks a module built from blocks.py classes (one op or a whole subnet
``nn.Sequential``) and writes a float32 TFLite flatbuffer with the schema classes that
``ai_edge_litert`` ships (``ai_edge_litert.schema_py_generated``, object API ``ModelT`` ...).

* **Layout: the model's input is NHWC** ``(N, H, W, C)`` = ``example.permute(0, 2, 3, 1)``; 4-D
  outputs are NHWC too, the classifier's output is ``(N, n_classes)``.
* BN is folded into the preceding conv (:func:`ofa_profile.blocks.folded_conv_params`).
* Ops: ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` (ReLU and ReLU6 fused), ``HARD_SWISH``, ``ADD`` (identity
  shortcut), ``MEAN`` over H, W (global pool, SE squeeze), ``MUL`` (SE scale), ``FULLY_CONNECTED``,
  ``PAD``.  h_sigmoid = relu6(x + 3) / 6 is the SE expand conv with ``+3`` folded into its bias and
  ReLU6 fused, then ``MUL`` by 1/6.
* Padding: stride-1 convs use ``SAME`` (symmetric for odd kernels, as torch).  A strided conv gets an
  explicit ``PAD`` op + ``VALID``: TFLite's ``SAME`` puts the extra row/column of an even input
  at the bottom/right only, torch pads both sides, so outputs would differ.
* Constant buffers are uint8 numpy arrays (packed in one copy; a ``bytes``/list payload is
  packed byte by byte, ~100x slower) and 16-byte aligned in the file.
* One signature, ``serving_default`` (``input`` -> ``output``): what signature-driven tools look tensors up
  by (``ai-edge-quantizer``'s calibration for int8: :mod:`ofa_profile.quantize`).
* The file is written atomically (temp file in the same folder + ``os.replace``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .errors import OfaProfileError

__all__ = ["TfliteModel", "TfliteWriteError", "write_tflite", "tflite_bytes", "load_schema"]

WRITER_VERSION = "1"   # the timed graph; the signature (metadata, not an op) left it as it was
#: the signature every written model carries (input ``input``, output ``output``)
SIGNATURE_KEY = "serving_default"


class TfliteWriteError(OfaProfileError):
    """A module the direct .tflite writer cannot translate (or a missing schema package)."""


@dataclass(frozen=True)
class TfliteModel:
    """What :func:`write_tflite` wrote: the file, NHWC input shape, output shape, operator count, size."""
    path: Path
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    n_operators: int
    n_bytes: int


def load_schema() -> Any:
    """The flatbuffer schema module shipped with ai-edge-litert (raises :class:`TfliteWriteError`)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except Exception as exc:  # ImportError, or a broken install
        raise TfliteWriteError(f"cannot import ai_edge_litert.schema_py_generated ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); install it: "
                               f"pip install ai-edge-litert") from None
    return schema


class _Graph:
    """Tensors, buffers and operators of one subgraph, under construction."""

    def __init__(self, schema: Any):
        import numpy as np

        self.np = np
        self.s = schema
        self.tensors: list[Any] = []
        self.shapes: list[tuple[int, ...]] = []
        self.buffers: list[Any] = [schema.BufferT()]  # buffer 0: the empty sentinel (activations use it)
        self.operators: list[Any] = []
        self.opcodes: dict[int, int] = {}
        self.const_bytes = 0

    # -- tensors ----------------------------------------------------------------------------------
    def _tensor(self, shape: tuple[int, ...], name: str, ttype: int, buffer: int) -> int:
        t = self.s.TensorT()
        t.shape = [int(d) for d in shape]
        t.type = ttype
        t.buffer = buffer
        t.name = f"{name}_{len(self.tensors)}"
        self.tensors.append(t)
        self.shapes.append(tuple(int(d) for d in shape))
        return len(self.tensors) - 1

    def act(self, shape: tuple[int, ...], name: str) -> int:
        return self._tensor(shape, name, self.s.TensorType.FLOAT32, 0)

    def const(self, arr: Any, name: str) -> int:
        np = self.np
        if arr.dtype == np.float32:
            ttype = self.s.TensorType.FLOAT32
        elif arr.dtype == np.int32:
            ttype = self.s.TensorType.INT32
        else:  # pragma: no cover - internal misuse
            raise TfliteWriteError(f"constant {name} has unsupported dtype {arr.dtype}")
        b = self.s.BufferT()
        b.data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).reshape(-1).view(np.uint8)
        self.const_bytes += b.data.size
        self.buffers.append(b)
        return self._tensor(arr.shape, name, ttype, len(self.buffers) - 1)

    # -- operators --------------------------------------------------------------------------------
    def op(self, code: int, inputs: list[int], outputs: list[int], opt_type: int = 0, opts: Any = None) -> None:
        if code not in self.opcodes:
            self.opcodes[code] = len(self.opcodes)
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcodes[code]
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if opts is not None:
            o.builtinOptionsType = opt_type
            o.builtinOptions = opts
        self.operators.append(o)

    def opcode_list(self) -> list[Any]:
        out = []
        for code, _ in sorted(self.opcodes.items(), key=lambda kv: kv[1]):
            oc = self.s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.version = 1
            out.append(oc)
        return out


# -- module walking ---------------------------------------------------------------------------------

def _fused_code(s: Any, act: Any) -> int | None:
    """TFLite fused-activation code of an activation module, None if it cannot be fused."""
    import torch.nn as nn
    A = s.ActivationFunctionType
    if act is None or isinstance(act, nn.Identity):
        return A.NONE
    if isinstance(act, nn.ReLU):
        return A.RELU
    if isinstance(act, nn.ReLU6):
        return A.RELU6
    return None


def _emit_act(g: _Graph, act: Any, x: int, name: str) -> int:
    """A standalone activation op (h-swish, relu, relu6, h-sigmoid); identity passes through."""
    import torch.nn as nn
    s, np = g.s, g.np
    shape = g.shapes[x]
    if act is None or isinstance(act, nn.Identity):
        return x
    if isinstance(act, nn.Hardswish):
        y = g.act(shape, f"{name}/hswish")
        g.op(s.BuiltinOperator.HARD_SWISH, [x], [y], s.BuiltinOptions.HardSwishOptions, s.HardSwishOptionsT())
        return y
    if isinstance(act, (nn.ReLU, nn.ReLU6)):
        code = s.BuiltinOperator.RELU if isinstance(act, nn.ReLU) else s.BuiltinOperator.RELU6
        y = g.act(shape, f"{name}/relu")
        g.op(code, [x], [y])
        return y
    if isinstance(act, nn.Hardsigmoid):  # relu6(x + 3) / 6
        t = g.act(shape, f"{name}/hsig_add")
        opts = s.AddOptionsT()
        opts.fusedActivationFunction = s.ActivationFunctionType.RELU6
        g.op(s.BuiltinOperator.ADD, [x, g.const(np.array([3.0], np.float32), f"{name}/three")], [t],
             s.BuiltinOptions.AddOptions, opts)
        return _mul_const(g, t, 1.0 / 6.0, f"{name}/hsig")
    raise TfliteWriteError(f"{name}: activation {type(act).__name__} is not supported by the .tflite writer "
                           f"(relu, relu6, h_swish, h_sigmoid are)")


def _mul_const(g: _Graph, x: int, value: float, name: str) -> int:
    s, np = g.s, g.np
    y = g.act(g.shapes[x], f"{name}/mul")
    opts = s.MulOptionsT()
    opts.fusedActivationFunction = s.ActivationFunctionType.NONE
    g.op(s.BuiltinOperator.MUL, [x, g.const(np.array([value], np.float32), f"{name}/scale")], [y],
         s.BuiltinOptions.MulOptions, opts)
    return y


def _emit_conv(g: _Graph, conv: Any, bn: Any, act: Any, x: int, name: str, bias_add: float = 0.0) -> int:
    """conv (+ folded BN) with the activation fused where TFLite can, else a separate op."""
    from .blocks import folded_conv_params
    s, np = g.s, g.np
    n, h, w, c = g.shapes[x]
    if c != conv.in_channels:
        raise TfliteWriteError(f"{name}: conv expects {conv.in_channels} input channels, got {c}")
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    ph, pw = conv.padding if isinstance(conv.padding, tuple) else (None, None)
    if ph is None or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        raise TfliteWriteError(f"{name}: only zero-padded, undilated convs with numeric padding are supported")
    wt, bias = folded_conv_params(conv, bn)
    if bias_add:
        bias = (bias + np.float32(bias_add)).astype(np.float32)
    fused = _fused_code(s, act)
    P = s.Padding
    if ph == 0 and pw == 0:
        padding = P.VALID
    elif (sh, sw) == (1, 1) and kh % 2 == 1 and kw % 2 == 1 and (ph, pw) == (kh // 2, kw // 2):
        padding = P.SAME  # symmetric here, exactly torch's
    else:  # explicit PAD + VALID (TFLite SAME would pad bottom/right only for even inputs)
        pads = g.const(np.array([[0, 0], [ph, ph], [pw, pw], [0, 0]], np.int32), f"{name}/paddings")
        h, w = h + 2 * ph, w + 2 * pw
        xp = g.act((n, h, w, c), f"{name}/pad")
        g.op(s.BuiltinOperator.PAD, [x, pads], [xp], s.BuiltinOptions.PadOptions, s.PadOptionsT())
        x, padding = xp, P.VALID
    if padding == P.VALID:
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    else:
        oh, ow = (h - 1) // sh + 1, (w - 1) // sw + 1
    out_c = conv.out_channels
    y = g.act((n, oh, ow, out_c), name)
    if conv.groups == 1:
        wi = g.const(np.ascontiguousarray(wt.transpose(0, 2, 3, 1)), f"{name}/weight")  # OHWI
        opts = s.Conv2DOptionsT()
        code, otype = s.BuiltinOperator.CONV_2D, s.BuiltinOptions.Conv2DOptions
    elif conv.groups == conv.in_channels == out_c:
        wi = g.const(np.ascontiguousarray(wt.transpose(1, 2, 3, 0)), f"{name}/weight")  # 1HWC
        opts = s.DepthwiseConv2DOptionsT()
        opts.depthMultiplier = 1
        code, otype = s.BuiltinOperator.DEPTHWISE_CONV_2D, s.BuiltinOptions.DepthwiseConv2DOptions
    else:
        raise TfliteWriteError(f"{name}: grouped conv (groups={conv.groups}) is neither dense nor depthwise")
    opts.padding = padding
    opts.strideH, opts.strideW = sh, sw
    opts.dilationHFactor = opts.dilationWFactor = 1
    opts.fusedActivationFunction = s.ActivationFunctionType.NONE if fused is None else fused
    g.op(code, [x, wi, g.const(bias, f"{name}/bias")], [y], otype, opts)
    return y if fused is not None else _emit_act(g, act, y, name)


def _emit_children(g: _Graph, children: list[tuple[str, Any]], x: int, name: str) -> int:
    """A chain of modules; a Conv2d swallows a following BatchNorm2d and activation."""
    import torch.nn as nn
    i = 0
    while i < len(children):
        cname, m = children[i]
        path = f"{name}.{cname}" if name else cname
        if isinstance(m, nn.Conv2d):
            bn = act = None
            j = i + 1
            if j < len(children) and isinstance(children[j][1], (nn.BatchNorm2d, nn.Identity)):
                bn, j = children[j][1], j + 1
            if j < len(children) and isinstance(children[j][1], (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid)):
                act, j = children[j][1], j + 1
            x = _emit_conv(g, m, bn, act, x, path)
            i = j
            continue
        if isinstance(m, nn.BatchNorm2d):
            raise TfliteWriteError(f"{path}: a BatchNorm2d that does not follow a conv cannot be folded")
        x = _emit(g, m, x, path)
        i += 1
    return x


def _mean_hw(g: _Graph, x: int, name: str) -> int:
    s, np = g.s, g.np
    n, _, _, c = g.shapes[x]
    y = g.act((n, 1, 1, c), f"{name}/mean")
    opts = s.ReducerOptionsT()
    opts.keepDims = True
    g.op(s.BuiltinOperator.MEAN, [x, g.const(np.array([1, 2], np.int32), f"{name}/axes")], [y],
         s.BuiltinOptions.ReducerOptions, opts)
    return y


def _emit(g: _Graph, m: Any, x: int, name: str) -> int:
    import torch.nn as nn

    from . import blocks as B
    s, np = g.s, g.np
    if isinstance(m, B.MBConv):
        y = x
        if m.inverted_bottleneck is not None:
            y = _emit_children(g, list(m.inverted_bottleneck.named_children()), y, f"{name}.inverted_bottleneck")
        y = _emit_children(g, list(m.depth_conv.named_children()), y, f"{name}.depth_conv")
        y = _emit_children(g, list(m.point_linear.named_children()), y, f"{name}.point_linear")
        if m.idskip:
            if g.shapes[y] != g.shapes[x]:
                raise TfliteWriteError(f"{name}: identity shortcut between shapes {g.shapes[x]} and {g.shapes[y]}")
            z = g.act(g.shapes[y], f"{name}/add")
            opts = s.AddOptionsT()
            opts.fusedActivationFunction = s.ActivationFunctionType.NONE
            g.op(s.BuiltinOperator.ADD, [y, x], [z], s.BuiltinOptions.AddOptions, opts)
            y = z
        return y
    if isinstance(m, B.SqueezeExcite):
        fc = m.fc
        kinds = [type(c) for c in fc.children()]
        if kinds != [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.Hardsigmoid]:
            raise TfliteWriteError(f"{name}: unexpected SE layout {[k.__name__ for k in kinds]}")
        sq = _mean_hw(g, x, name)
        r = _emit_conv(g, fc.reduce, None, fc.relu, sq, f"{name}.fc.reduce")
        # h_sigmoid(z) = relu6(z + 3) / 6: +3 folded into the expand bias, relu6 fused, then * 1/6
        e = _emit_conv(g, fc.expand, None, nn.ReLU6(), r, f"{name}.fc.expand", bias_add=3.0)
        scale = _mul_const(g, e, 1.0 / 6.0, f"{name}.fc.h_sigmoid")
        y = g.act(g.shapes[x], f"{name}/scale")
        opts = s.MulOptionsT()
        opts.fusedActivationFunction = s.ActivationFunctionType.NONE
        g.op(s.BuiltinOperator.MUL, [x, scale], [y], s.BuiltinOptions.MulOptions, opts)
        return y
    if isinstance(m, B.AvgPool):
        return _mean_hw(g, x, name)
    if isinstance(m, B.Classifier):
        if m.pool is not None:                  # ProxylessNAS's Logits op: the pool is part of it
            x = _mean_hw(g, x, f"{name}.pool")
        shape = g.shapes[x]
        if len(shape) == 4 and shape[1:3] != (1, 1):
            raise TfliteWriteError(f"{name}: the classifier needs a 1x1 feature map in NHWC, got {shape}")
        lin = m.linear
        feats = shape[-1]
        if feats != lin.in_features:
            raise TfliteWriteError(f"{name}: linear expects {lin.in_features} features, got {feats}")
        wt = lin.weight.detach().cpu().float().numpy()
        b = (lin.bias.detach().cpu().float().numpy() if lin.bias is not None
             else np.zeros(lin.out_features, np.float32))
        y = g.act((shape[0], lin.out_features), f"{name}.linear")
        opts = s.FullyConnectedOptionsT()
        opts.fusedActivationFunction = s.ActivationFunctionType.NONE
        opts.keepNumDims = False
        g.op(s.BuiltinOperator.FULLY_CONNECTED,
             [x, g.const(np.ascontiguousarray(wt), f"{name}.linear/weight"), g.const(b, f"{name}.linear/bias")],
             [y], s.BuiltinOptions.FullyConnectedOptions, opts)
        return y
    if isinstance(m, (B.ConvBNAct, nn.Sequential)):
        return _emit_children(g, list(m.named_children()), x, name)
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return x
    if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid)):
        return _emit_act(g, m, x, name)
    if isinstance(m, nn.Conv2d):
        return _emit_conv(g, m, None, None, x, name)
    raise TfliteWriteError(f"{name or 'module'}: {type(m).__name__} is not supported by the .tflite writer; "
                           f"build the model from ofa_profile.blocks classes")


class _AlignedBuilder:
    """Factory for a flatbuffers Builder whose numpy byte vectors (tensor buffers) are 16-byte aligned."""

    @staticmethod
    def make(initial_size: int) -> Any:
        import flatbuffers
        import numpy as np

        class Builder(flatbuffers.Builder):
            def CreateNumpyVector(self, x: Any) -> int:  # noqa: N802 (flatbuffers' name)
                if not (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 1):
                    return super().CreateNumpyVector(x)
                self.StartVector(1, x.size, 16)
                payload = x.tobytes()
                self.head = self.head - len(payload)
                self.Bytes[self.head:self.head + len(payload)] = payload
                self.vectorNumElems = x.size
                return self.EndVector()

        return Builder(initial_size)


def _signature(s: Any, x: int, y: int) -> Any:
    """The one signature ``serving_default`` (``input`` -> ``output``): what signature-driven tools (the int8
    quantizer's calibration, ``Interpreter.get_signature_runner``) look the model's tensors up by."""
    def tmap(name: str, index: int) -> Any:
        t = s.TensorMapT()
        t.name, t.tensorIndex = name, index
        return t
    sig = s.SignatureDefT()
    sig.inputs, sig.outputs = [tmap("input", x)], [tmap("output", y)]
    sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
    return sig


def _build_model(module: Any, example: Any) -> tuple[memoryview, tuple[int, ...], tuple[int, ...], int]:
    import torch

    s = load_schema()
    if not isinstance(example, torch.Tensor) or example.dim() != 4:
        raise TfliteWriteError(f"the example input must be a 4-D NCHW tensor, got "
                               f"{getattr(example, 'shape', type(example).__name__)}")
    n, c, h, w = (int(d) for d in example.shape)
    g = _Graph(s)
    x = g.act((n, h, w, c), "input")
    with torch.no_grad():
        y = _emit(g, module, x, "")
    if y == x:
        raise TfliteWriteError("the module has no operators to write")
    g.tensors[x].name, g.tensors[y].name = "input", "output"
    sub = s.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = g.tensors, [x], [y], g.operators
    sub.name = "main"
    model = s.ModelT()
    model.version = 3
    model.description = f"ofa-profile direct writer v{WRITER_VERSION}"
    model.operatorCodes = g.opcode_list()
    model.subgraphs = [sub]
    model.buffers = g.buffers
    model.signatureDefs = [_signature(s, x, y)]
    builder = _AlignedBuilder.make(g.const_bytes + 16 * len(g.buffers) + 65536)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    # a view of the finished buffer (Output() and bytes() would copy it twice more)
    return memoryview(builder.Bytes)[builder.Head():], g.shapes[x], g.shapes[y], len(g.operators)


def tflite_bytes(module: Any, example_input: Any) -> bytes:
    """The .tflite flatbuffer of ``module`` as bytes (input NHWC of ``example_input``'s NCHW shape)."""
    return bytes(_build_model(module, example_input)[0])


def write_tflite(module: Any, example_input: Any, path: str | os.PathLike) -> TfliteModel:
    """Write ``module`` (blocks.py classes, eval semantics) as a float32 .tflite file, atomically.

    ``example_input`` is the NCHW torch tensor the module takes; only its shape is used.  The written
    model's input is **NHWC** (``example_input.permute(0, 2, 3, 1)``), 4-D outputs are NHWC.
    """
    data, in_shape, out_shape, n_ops = _build_model(module, example_input)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return TfliteModel(path, in_shape, out_shape, n_ops, data.nbytes)
