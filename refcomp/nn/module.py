"""Module, Parameter, Sequential: the containers every layer lives in.

A layer is written as two explicit functions, no autograd:

* ``forward(x)`` computes the output and keeps what backward needs (the cache);
* ``backward(dy)`` takes dL/dy, *adds* dL/dθ into each parameter's ``.grad``
  and returns dL/dx.

Gradients accumulate (as in PyTorch) until :meth:`Module.zero_grad`.

Names are stable: a parameter is called ``<layer name>.<attribute>`` (e.g.
``conv1.weight``), which is how compression reports and model files refer to
it. Parameters and sub-modules are discovered from the instance attributes in
the order they were assigned.

Containers (Sequential, Graph) run a child as ``child(*inputs)``, i.e.
:meth:`Module.__call__`: its forward, then the forward hooks registered on it
(:meth:`Module.register_forward_hook`) — the one way to observe a layer's
inputs and output (calibration, GPTQ, activation statistics).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np

from ..errors import ShapeError, ValidationError
from ..formats.base import WeightFormat
from ..formats.dense import Dense

__all__ = ["Parameter", "Module", "Sequential", "HookHandle", "run_with_hooks", "run_batch", "as_rng",
           "LAYER_TYPES", "register_layer"]

#: layer type name -> class, for rebuilding a model from its JSON graph
LAYER_TYPES: dict[str, type] = {}


def register_layer(cls):
    """Class decorator: make ``cls`` known to :func:`Module.from_config` by its name."""
    LAYER_TYPES[cls.__name__] = cls
    return cls


def as_rng(rng, argument: str = "rng") -> np.random.Generator:
    """``rng`` as a Generator: a Generator is used as is, an int seeds a new one."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValidationError(argument, "a numpy.random.Generator or an int seed", repr(rng))


def run_batch(model, batch):
    """``model.forward`` on one calibration batch; returns its output.

    A batch is either one array, the input of a one-input model
    (``model.forward(batch)``), or a tuple of arrays, the inputs of a
    multi-input model in the order of its ``inputs`` (``model.forward(*batch)``;
    e.g. ``(input_ids, attention_mask)`` for a BERT encoder). Only a tuple is
    unpacked: a list or an array is always one input, so a one-input model is
    called exactly as before.
    """
    return model.forward(*batch) if isinstance(batch, tuple) else model.forward(batch)


def run_with_hooks(model, hooks, batches) -> None:
    """Run ``model.forward`` in eval mode on each batch of ``batches`` with the forward ``hooks``
    [(module, fn(module, inputs, output)), ...] registered.

    A batch is one array, or a tuple of arrays for a multi-input model
    (:func:`run_batch`). The hooks are removed and the model's mode restored
    afterwards, also on error. This is how calibration, bias correction and
    activation-based pruning see what the layers take and give.
    """
    handles = [module.register_forward_hook(fn) for module, fn in hooks]
    was = model.training
    model.eval()
    try:
        for xb in batches:
            run_batch(model, xb)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was)


class Parameter:
    """A trainable array that is not a weight format (biases, norm scales).

    ``data`` is updated in place by optimizers; ``grad`` is dL/d(data) or None.
    """

    trainable = True

    def __init__(self, data):
        a = np.asarray(data)
        if a.dtype.kind != "f":
            a = a.astype(np.float32)
        self.data = np.ascontiguousarray(a)
        self.grad: np.ndarray | None = None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def _accumulate(p, g: np.ndarray) -> None:
    """p.grad += g (allocating on first use); g is cast to p's dtype (a Parameter's or a trainable format's).

    A format that computes with a function of its trained data (QAT's
    FakeQuantized) receives g = dL/dŵ through its ``accumulate_grad`` and
    applies its own gradient rule.
    """
    accumulate = getattr(p, "accumulate_grad", None)
    if accumulate is not None:
        accumulate(g)
        return
    if p.grad is None:
        p.grad = np.array(g, dtype=p.dtype, copy=True)
    else:
        p.grad += g


class HookHandle:
    """Returned by :meth:`Module.register_forward_hook`; ``remove()`` unregisters the hook.

    Also a context manager: ``with layer.register_forward_hook(fn): ...`` removes it on exit.
    """

    _ids = itertools.count()

    def __init__(self, hooks: "OrderedDict[int, Callable]"):
        self._hooks = hooks
        self.id = next(HookHandle._ids)

    def remove(self) -> None:
        """Unregister the hook (a second call does nothing)."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "HookHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class Module:
    """Base class: forward/backward, parameters, buffers, train/eval mode.

    Subclasses set ``_buffer_names`` for non-trainable state saved in files
    (e.g. BatchNorm's running statistics) and implement :meth:`config`, the
    JSON-able constructor arguments used to rebuild the layer from a file.
    """

    _buffer_names: tuple[str, ...] = ()
    training: bool = True

    # -- computation ---------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, *inputs):
        """``forward(*inputs)``, then each forward hook ``fn(self, inputs, output)`` in registration order.

        This is how containers run their children. Without hooks it is exactly
        ``forward`` (one dict lookup more).
        """
        y = self.forward(*inputs)
        hooks = self.__dict__.get("_forward_hooks")
        if hooks:
            for fn in list(hooks.values()):     # a copy: a hook may remove itself
                r = fn(self, inputs, y)
                if r is not None:
                    raise ValidationError("forward hook", "a function returning None (hooks observe, "
                                          "they do not replace the output)", type(r).__name__)
        return y

    def register_forward_hook(self, fn: Callable) -> HookHandle:
        """Call ``fn(module, inputs, output)`` after every forward run through ``module(...)``.

        ``inputs`` is the tuple of positional inputs, ``output`` the result; the
        arrays are the live ones (copy them to keep them). Returns a handle whose
        ``remove()`` unregisters ``fn``. Hooks are not saved in model files.
        """
        if not callable(fn):
            raise ValidationError("fn", "a callable fn(module, inputs, output)", type(fn).__name__)
        # set lazily: Module subclasses do not call a base __init__
        hooks = self.__dict__.setdefault("_forward_hooks", OrderedDict())
        handle = HookHandle(hooks)
        hooks[handle.id] = fn
        return handle

    def _require_forward(self, cache) -> None:
        """Raise ValidationError unless a forward() left ``cache`` (what backward() needs) behind."""
        if cache is None:
            raise ValidationError("backward", f"a preceding forward() of {type(self).__name__}", "none")

    # -- structure -----------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        for name, v in vars(self).items():
            if isinstance(v, Module):
                yield name, v

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, m in self.named_children():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def _own_parameters(self) -> Iterator[tuple[str, object]]:
        """(attribute, Parameter or WeightFormat) held directly by this module, and a format's own
        trained parameters as ``<attribute>.<name>`` (an LSQ weight's step)."""
        for name, v in vars(self).items():
            if isinstance(v, (Parameter, WeightFormat)):
                yield name, v
            if isinstance(v, WeightFormat):
                for sub, p in v.named_parameters():
                    yield f"{name}.{sub}", p

    def named_weights(self, prefix: str = "") -> Iterator[tuple[str, object]]:
        """Every Parameter and WeightFormat, trainable or not, with its dotted name."""
        for mname, m in self.named_modules(prefix):
            for pname, p in m._own_parameters():
                yield (f"{mname}.{pname}" if mname else pname), p

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, object]]:
        """The trainable ones (``trainable`` true): what optimizers update."""
        for name, p in self.named_weights(prefix):
            if getattr(p, "trainable", False):
                yield name, p

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """Number of scalars in all weights and parameters (trainable or not)."""
        return int(sum(int(np.prod(p.shape)) for _, p in self.named_weights()))

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mname, m in self.named_modules(prefix):
            for b in m._buffer_names:
                yield (f"{mname}.{b}" if mname else b), getattr(m, b)

    # -- modes and gradients -------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for _, p in self.named_weights():
            if hasattr(p, "grad"):
                p.grad = None

    # -- export ----------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Name -> array for every Dense weight / Parameter and every buffer (no copies).

        Weights stored in another format appear as ``<name>.<field>`` for each of its fields().
        """
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for name, p in self.named_weights():
            if isinstance(p, (Parameter, Dense)):
                out[name] = p.data
            else:
                for f, a in p.fields().items():
                    out[f"{name}.{f}"] = a
        for name, b in self.named_buffers():
            out[name] = b
        return out

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the Dense weights, Parameters and buffers (shapes must match)."""
        want = {}
        for name, p in self.named_weights():
            if isinstance(p, (Parameter, Dense)):
                want[name] = p
        buffers = dict(self.named_buffers())
        missing = [k for k in list(want) + list(buffers) if k not in state]
        if missing:
            raise ValidationError("state", "entries for every weight and buffer", f"missing {missing}")
        for name, p in want.items():
            a = np.asarray(state[name])
            if a.shape != p.data.shape:
                raise ShapeError(f"state[{name!r}]", f"shape {p.data.shape}", a.shape)
            p.data[...] = a
        for name, b in buffers.items():
            a = np.asarray(state[name])
            if a.shape != b.shape:
                raise ShapeError(f"state[{name!r}]", f"shape {b.shape}", a.shape)
            b[...] = a

    def config(self) -> dict:
        """JSON-able constructor keyword arguments (rebuild with ``type(self)(**config)``)."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


@register_layer
class Sequential(Module):
    """Layers applied in order; each has a stable name.

    ``Sequential(Linear(...), ReLU())`` names them "0", "1", ...;
    ``Sequential(("fc1", Linear(...)), ("relu1", ReLU()))`` uses the given names.
    ``model["fc1"]`` and ``model[0]`` both return a layer.
    """

    accepts_input_grad = True

    def __init__(self, *layers):
        self.layers: OrderedDict[str, Module] = OrderedDict()
        for i, item in enumerate(layers):
            if isinstance(item, tuple):
                name, layer = item
            else:
                name, layer = str(i), item
            self.add(name, layer)

    def add(self, name: str, layer: Module) -> None:
        if not isinstance(layer, Module):
            raise ValidationError(f"layer {name!r}", "a refcomp.nn.Module", type(layer).__name__)
        if not isinstance(name, str) or not name or "." in name or name in self.layers:
            raise ValidationError("name", "a new non-empty string without '.'", repr(name))
        self.layers[name] = layer

    def named_children(self):
        yield from self.layers.items()

    def __getitem__(self, key):
        if isinstance(key, int):
            return list(self.layers.values())[key]
        return self.layers[key]

    def __setitem__(self, key: str, layer: Module) -> None:
        """Replace the layer called ``key`` (how compression swaps a layer)."""
        if key not in self.layers:
            raise ValidationError("key", f"one of {list(self.layers)}", repr(key))
        self.layers[key] = layer

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers.values())

    def forward(self, x):
        for layer in self.layers.values():
            x = layer(x)        # through __call__: runs the layer's forward hooks
        return x

    def backward(self, dy, *, input_grad: bool = True):
        """Back through the layers in reverse order; returns dL/dx.

        ``input_grad=False`` (what ``train`` passes) lets the first layer skip
        computing dL/dx, which nobody needs for the network input; then returns None.
        """
        layers = list(self.layers.values())
        # layers after which nothing needs dx: the parameter-free prefix plus the first parametric layer
        first = next((i for i, l in enumerate(layers) if any(True for _ in l.named_weights())), 0)
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            if not input_grad and i == first and getattr(layer, "accepts_input_grad", False):
                return layer.backward(dy, input_grad=False)
            dy = layer.backward(dy)
        return dy

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({n}): {l!r}".replace("\n", "\n  ") for n, l in self.layers.items())
        return f"Sequential(\n{inner}\n)"
