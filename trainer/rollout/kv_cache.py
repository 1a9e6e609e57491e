"""A batched KV cache for continuous batching: growing buffers, holes, a 4-D additive mask.

It subclasses transformers' `DynamicLayer` (imported inside `_growing_layer_class`), the one
place the trainer depends on transformers internals; used by the hf engine only.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch

if TYPE_CHECKING:  # annotations only: transformers is imported lazily (~2 s)
    from transformers.cache_utils import CacheLayerMixin, LinearAttentionCacheLayerMixin


class _KV(Protocol):
    keys: torch.Tensor | None  # None until the layer is initialized (transformers' typing)
    values: torch.Tensor | None


class _Layer(_KV, Protocol):
    """What `BatchCache` uses of its layers (all `GrowingLayer`s, a class made at run time)."""

    is_initialized: bool

    def keep_rows(self, idx: list[int]) -> None: ...

    def assign(self, keys: torch.Tensor, values: torch.Tensor) -> None: ...

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def _tensors(layer: _KV) -> tuple[torch.Tensor, torch.Tensor]:
    """An initialized layer's keys and values."""
    if layer.keys is None or layer.values is None:
        raise RuntimeError("the cache layer is not initialized")
    return layer.keys, layer.values


def _growing_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A DynamicLayer that appends into preallocated, doubling buffers instead of `torch.cat`
        (which copies the whole cache every decode step; it was the largest cost on CPU)."""

        _buf_k: torch.Tensor | None = None
        _buf_v: torch.Tensor | None = None

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            keys, values = _tensors(self)
            n_old = keys.shape[-2] if keys.numel() else 0
            n_new = n_old + key_states.shape[-2]
            buf_k, buf_v = self._buf_k, self._buf_v
            if (
                buf_k is None
                or buf_v is None
                or buf_k.shape[-2] < n_new
                or buf_k.shape[0] != key_states.shape[0]
                or (n_old and keys.data_ptr() != buf_k.data_ptr())  # replaced by select/compact
            ):
                N, H, _, D = key_states.shape
                cap = max(2 * n_new, 256)
                buf_k = key_states.new_empty((N, H, cap, D))
                buf_v = value_states.new_empty((N, H, cap, D))
                if n_old:
                    buf_k[:, :, :n_old] = keys
                    buf_v[:, :, :n_old] = values
                self._buf_k, self._buf_v = buf_k, buf_v
            buf_k[:, :, n_old:n_new] = key_states
            buf_v[:, :, n_old:n_new] = value_states
            self.keys, self.values = buf_k[:, :, :n_new], buf_v[:, :, :n_new]
            return self.keys, self.values

        def keep_rows(self, idx: list[int]) -> None:
            """Keep rows `idx` (ascending) by moving them down in place: no new buffer, and
            each moved row is copied once (`batch_select_indices` gathers into a new tensor,
            which the next `update` then copies into a new buffer)."""
            keys, _ = _tensors(self)
            buf_k, buf_v = self._buf_k, self._buf_v
            if buf_k is None or buf_v is None or keys.data_ptr() != buf_k.data_ptr():
                t = torch.tensor(idx, dtype=torch.long, device=keys.device)
                self.batch_select_indices(t)
                return
            K = keys.shape[-2]
            for j, i in enumerate(idx):
                if i != j:
                    buf_k[j, :, :K].copy_(buf_k[i, :, :K])
                    buf_v[j, :, :K].copy_(buf_v[i, :, :K])
            self._buf_k, self._buf_v = buf_k[: len(idx)], buf_v[: len(idx)]
            self.keys, self.values = self._buf_k[:, :, :K], self._buf_v[:, :, :K]

        def assign(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            """Replace the contents, writing into the current buffer when they fit."""
            buf_k, buf_v = self._buf_k, self._buf_v
            if (
                buf_k is None
                or buf_v is None
                or buf_k.shape[0] != keys.shape[0]
                or buf_k.shape[-2] < keys.shape[-2]
            ):
                self.keys, self.values = keys, values  # the next `update` makes a new buffer
                return
            K = keys.shape[-2]
            buf_k[:, :, :K].copy_(keys)
            buf_v[:, :, :K].copy_(values)
            self.keys, self.values = buf_k[:, :, :K], buf_v[:, :, :K]

    return GrowingLayer


class BatchCache:
    """A KV cache over rows with holes, its key mask, and the forward pass that extends it."""

    def __init__(self, model: Any, n_rows: int, pad_id: int, device: torch.device):
        from transformers.cache_utils import Cache

        self.model = model
        self.pad_id = pad_id
        self.device = device
        self.kv = Cache(layer_class_to_replicate=_growing_layer_class())
        self.keep_N_K = torch.zeros((n_rows, 0), dtype=torch.bool, device=device)
        # Only the last position's logits are used: models that can skip the LM head elsewhere
        # (transformers' `logits_to_keep`) are asked to; it saves ~10 % of a chunk's compute.
        takes = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.last_logits_only = {"logits_to_keep": 1} if takes else {}

    def _layers(self) -> list[_Layer]:
        # every layer is a GrowingLayer (the class the cache replicates), which is made at run
        # time because transformers is imported lazily: mypy cannot name it
        return cast("list[_Layer]", self.kv.layers)

    def select(self, idx: list[int]) -> None:
        """Keep only these rows (strictly ascending indices), moved down in place."""
        if len(idx) == self.keep_N_K.shape[0]:
            return
        for layer in self._layers():
            if layer.is_initialized:
                layer.keep_rows(idx)
        self.keep_N_K = self.keep_N_K[torch.tensor(idx, dtype=torch.long, device=self.device)]

    def compact(self) -> None:
        """Squeeze the holes out: each row's real keys move right-aligned into K' = the longest
        row's real length (left padding only). Positions are baked into the cached keys (RoPE),
        so moving them changes nothing the model computes; it bounds the cache to real tokens."""
        n_N = self.keep_N_K.sum(dim=1)
        K_new = int(n_N.max()) if n_N.numel() else 0
        if K_new == self.keep_N_K.shape[1]:
            return
        N, K = self.keep_N_K.shape
        # source index of each kept key, in order, right-aligned into K_new slots
        order_N_K = torch.argsort((~self.keep_N_K).to(torch.int8), dim=1, stable=True)  # kept first
        slot_K = torch.arange(K_new, device=self.device)
        offset_N = K_new - n_N  # left padding per row
        take_N_Kn = (slot_K[None, :] - offset_N[:, None]).clamp(min=0)
        src_N_Kn = order_N_K.gather(1, take_N_Kn)
        new_keep_N_Kn = slot_K[None, :] >= offset_N[:, None]
        for layer in self._layers():
            if layer.keys is None or layer.values is None or layer.keys.numel() == 0:
                continue
            _, H, _, D = layer.keys.shape
            index = src_N_Kn[:, None, :, None].expand(N, H, K_new, D)
            layer.assign(layer.keys.gather(2, index), layer.values.gather(2, index))
        self.keep_N_K = new_keep_N_Kn

    @torch.no_grad()
    def prefill(self, chunks_N: list[list[int]]) -> torch.Tensor:
        """The first forward of an empty cache, computing each distinct prompt once (the G
        rollouts of a task share theirs) and copying its keys and values to every row using it."""
        if self.keep_N_K.shape[1] != 0:
            raise RuntimeError("prefill needs an empty cache")
        first: dict[tuple[int, ...], int] = {}
        src_N = [first.setdefault(tuple(c), len(first)) for c in chunks_N]
        uniq_U = [list(c) for c in first]
        self.keep_N_K = self.keep_N_K[: len(uniq_U)]
        logits_U_V = self.forward(uniq_U, [0] * len(uniq_U))
        idx_N = torch.tensor(src_N, dtype=torch.long, device=self.device)
        self.kv.batch_select_indices(idx_N)
        self.keep_N_K = self.keep_N_K[idx_N]
        return logits_U_V[idx_N]

    @torch.no_grad()
    def forward(
        self, chunks_n: list[list[int]], start_pos_n: list[int], rows: list[int] | None = None
    ) -> torch.Tensor:
        """Feed rows their chunks (left-padded; empty = a hole); logits at the last position.

        `rows=None` computes every row (`chunks_n` has one chunk per row). Otherwise only the
        listed rows are computed, over a copy of their part of the cache, and every other row
        gets holes in the new columns: a long chunk for a few rows then costs those rows only,
        not the whole batch padded to its length. Returns logits for the computed rows.
        """
        n, L = len(chunks_n), max(1, max(len(c) for c in chunks_n))
        ids_n_L = torch.full((n, L), self.pad_id, dtype=torch.long)
        new_n_L = torch.zeros((n, L), dtype=torch.bool)
        pos_n_L = torch.zeros((n, L), dtype=torch.long)
        for i, (chunk, start) in enumerate(zip(chunks_n, start_pos_n, strict=True)):
            if chunk:
                ids_n_L[i, L - len(chunk) :] = torch.tensor(chunk, dtype=torch.long)
                new_n_L[i, L - len(chunk) :] = True
                pos_n_L[i, L - len(chunk) :] = torch.arange(start, start + len(chunk))
        new_n_L = new_n_L.to(self.device)
        if rows is None:
            kv, keep_n_K = self.kv, self.keep_N_K
        else:
            from transformers.cache_utils import Cache, DynamicLayer

            idx_n = torch.tensor(rows, dtype=torch.long, device=self.device)
            keep_n_K = self.keep_N_K[idx_n]
            layers: list[CacheLayerMixin | LinearAttentionCacheLayerMixin] = []
            for main in self._layers():
                keys, values = _tensors(main)
                layer = DynamicLayer()
                layer.lazy_initialization(keys, values)
                layer.keys, layer.values = keys[idx_n], values[idx_n]
                layers.append(layer)
            kv = Cache(layers=layers)
        k_old = keep_n_K.shape[1]
        keep_n_K = torch.cat([keep_n_K, new_n_L], dim=1)
        K = k_old + L
        k_K = torch.arange(K, device=self.device)
        q_L = k_old + torch.arange(L, device=self.device)
        causal_L_K = k_K[None, :] <= q_L[:, None]
        self_L_K = k_K[None, :] == q_L[:, None]  # a hole's query sees itself: no empty softmax row
        allowed_n_L_K = (keep_n_K[:, None, :] & causal_L_K[None]) | self_L_K[None]
        dtype = self.model.dtype
        mask_n_1_L_K = torch.zeros((n, 1, L, K), dtype=dtype, device=self.device)
        mask_n_1_L_K.masked_fill_(~allowed_n_L_K[:, None], torch.finfo(dtype).min)
        out = self.model(
            input_ids=ids_n_L.to(self.device),
            attention_mask=mask_n_1_L_K,
            position_ids=pos_n_L.to(self.device),
            past_key_values=kv,
            use_cache=True,
            **self.last_logits_only,
        )
        if rows is None:
            self.kv, self.keep_N_K = out.past_key_values, keep_n_K
        else:  # the computed rows' new keys and values go into their rows; holes elsewhere
            N = self.keep_N_K.shape[0]
            new_N_L = torch.zeros((N, L), dtype=torch.bool, device=self.device)
            new_N_L[idx_n] = new_n_L
            self.keep_N_K = torch.cat([self.keep_N_K, new_N_L], dim=1)
            for main, sub in zip(self._layers(), out.past_key_values.layers, strict=True):
                k_n, v_n = sub.keys[:, :, -L:], sub.values[:, :, -L:]  # n, H, L, D
                k_N = k_n.new_zeros((N, *k_n.shape[1:]))
                v_N = v_n.new_zeros((N, *v_n.shape[1:]))
                k_N[idx_n], v_N[idx_n] = k_n, v_n
                main.update(k_N, v_N)
        return out.logits[:, -1].float()  # n, V

    def real_fraction(self) -> float:
        """Share of cached positions that are real tokens (the rest are holes)."""
        return float(self.keep_N_K.float().mean()) if self.keep_N_K.numel() else 1.0
