"""A user's code against the public API, type-checked by mypy (tests/project/test_docs.py), never run:
the names, signatures and return types a notebook relies on resolve to real types, not Any."""

import numpy

import llm_anatomy as la


def walk(path: str) -> int:
    m: la.Model = la.open(path)
    total: int = 0
    for name, p in m.named_parameters():
        shape: tuple[int, ...] = p.shape
        dtype: str = p.dtype
        total += p.numel() + len(name) * 0 + len(shape) * 0 + len(dtype) * 0
    for child_name, child in m.named_children():
        module: la.Module = child
        class_name: str | None = module.class_name
    attention: la.Module = m.get_submodule("model.layers.0.self_attn")
    weight: la.Parameter = attention.get_parameter("q_proj.weight")
    corner: numpy.ndarray = weight[:2, -3:]
    whole: numpy.ndarray = weight.numpy()
    config: dict = m.config
    hidden = m.config.hidden_size  # attribute access: Any, as transformers' config
    kind: str = m.__class__.__name__
    for child_name, child in m.named_children():
        child_class: str = child.__class__.__name__
    state: la.api.StateDict = m.state_dict()
    names: list[str] = list(state.keys())
    for buffer_name, buffer in m.named_buffers():
        persistent: bool = buffer.persistent
    modules: list[la.Module] = list(m.modules())
    trainable: bool = weight.requires_grad
    device: str = weight.device
    as_array: numpy.ndarray = numpy.asarray(weight)
    flat: la.api.Reshaped = weight.view(-1)
    element: numpy.ndarray = flat[5]
    rows: tuple[int, ...] = weight.reshape(2, -1).shape
    text: str = m.config_text
    params: int = m.summary().total_params
    written: la.ReportFile = m.report("out.html", lang="en")
    size: int = written.nbytes
    changed: la.Diff = la.diff(m, path, "model.layers.*", values=False)
    compared: la.Diff = changed.with_values()
    return total + attention.num_parameters()


def refused(path: str) -> str:
    try:
        la.open(path).get_submodule("model.foo")
    except la.SubmoduleError as error:
        return str(error)
    except la.GatedRepo as error:  # the Hub's refusals by kind, as huggingface_hub's GatedRepoError
        return f"accept the license first: {error.line()}"
    except (la.RepoNotFound, la.RevisionNotFound, la.HubError, la.CorruptFile, la.MissingExtra) as error:
        return error.line()
    except la.AnatomyError as error:
        return error.line()
    return ""
