#!/usr/bin/env python3
"""Writes the fuzz seed corpora under tests/fuzz/{idx,safetensors,config}/ (committed; rerun
after changing this file). Names say what the unit test expects: valid_* parse, bad_* are
rejected with the reader's documented error, crash_* once crashed a reader and must now be
rejected cleanly (crash_fuzzed_* are libFuzzer's own crash inputs, copied in from
build-fuzz/crashes/ by hand and left alone by this script); other names (the shipped ds_configs, valid at some world sizes only) just must
not crash. Kept to a few KB per target so that `make test` replays them quickly."""
import gzip
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent
REPO = ROOT.parent.parent


def write(target, name, data):
    path = ROOT / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


# ---- IDX ----
def idx(dims, values=None, type_byte=0x08):
    count = 1
    for size in dims:
        count *= size
    if values is None:
        values = bytes(i % 251 for i in range(count))
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + values


def gz(data):
    return gzip.compress(data, mtime=0)


labels = idx([6], bytes([7, 2, 1, 0, 4, 9]))
images = idx([2, 4, 4])
write("idx", "valid_labels", labels)
write("idx", "valid_images_2x4x4", images)
write("idx", "valid_zero_rows", idx([0, 28, 28]))
write("idx", "valid_gzip", gz(images))
write("idx", "valid_gzip_two_members", gz(images[:10]) + gz(images[10:]))
write("idx", "bad_truncated", images[:-3])
write("idx", "bad_trailing_bytes", images + b"xyz")
write("idx", "bad_magic", b"\x01" + images[1:])
write("idx", "bad_type_float32", idx([2], bytes(8), 0x0D))
write("idx", "bad_zero_dims", idx([], b"x"))
write("idx", "bad_dims_cut_short", images[:9])
write("idx", "bad_lying_dims", idx([4000000000, 4000000000], b"abc"))
write("idx", "bad_dims_past_2_64", idx([0xFFFFFFFF] * 3, b""))
write("idx", "bad_gzip_truncated", gz(images)[:-12])
write("idx", "bad_gzip_trailing_garbage", gz(images) + b"garbage")
write("idx", "bad_gzip_corrupt", b"\x1f\x8b\x08\x00not really gzip")


# ---- safetensors ----
def safetensors(entries, metadata=None, data=None, header_length=None, raw_header=None):
    """entries: (name, dtype, shape, begin, end); data defaults to zeros up to the last end."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, begin, end in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    if data is None:
        data = bytes(max([e[4] for e in entries], default=0))
    length = len(text) if header_length is None else header_length
    return struct.pack("<Q", length) + text.encode() + data


mlp = [("fc.weight", "F32", [2, 3], 0, 24), ("fc.bias", "F32", [2], 24, 32)]
write("safetensors", "valid_mlp", safetensors(mlp, {"model": "mlp", "dataset": "mnist"},
                                             bytes(range(32))))
dtypes = [("F64", 8), ("I64", 8), ("F32", 4), ("I32", 4), ("F16", 2), ("BF16", 2), ("U8", 1)]
entries, offset = [], 0
for dtype, size in dtypes:
    entries.append((dtype.lower(), dtype, [2], offset, offset + 2 * size))
    offset += 2 * size
write("safetensors", "valid_all_dtypes", safetensors(entries))
write("safetensors", "valid_no_tensors", safetensors([]))
write("safetensors", "valid_empty_tensor", safetensors([("empty", "F32", [0, 4], 0, 0)]))
write("safetensors", "valid_scalar", safetensors([("scalar", "I64", [], 0, 8)]))
write("safetensors", "bad_overlap",
      safetensors([("a", "F32", [2], 0, 8), ("b", "F32", [2], 4, 12)], data=bytes(12)))
write("safetensors", "bad_past_end", safetensors([("a", "F32", [4], 0, 16)], data=bytes(8)))
write("safetensors", "bad_gap",
      safetensors([("a", "F32", [1], 0, 4), ("b", "F32", [1], 8, 12)], data=bytes(12)))
write("safetensors", "bad_trailing_data", safetensors([("a", "F32", [1], 0, 4)], data=bytes(8)))
write("safetensors", "bad_unknown_dtype", safetensors([("a", "F8_E4M3", [4], 0, 4)]))
write("safetensors", "bad_shape_mismatch", safetensors([("a", "F32", [3], 0, 8)]))
write("safetensors", "bad_negative_size", safetensors([("a", "F32", [-1], 0, 0)]))
write("safetensors", "bad_offsets_reversed", safetensors([("a", "U8", [0], 8, 0)], data=b""))
write("safetensors", "bad_header_length_lies", safetensors(mlp, header_length=1 << 20))
write("safetensors", "bad_header_length_huge", safetensors(mlp, header_length=1 << 62))
write("safetensors", "bad_four_bytes", b"\x10\x00\x00\x00")
write("safetensors", "bad_not_json", safetensors([], raw_header="{not json"))
write("safetensors", "bad_duplicate_name",
      safetensors([], raw_header='{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                 '"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
                  data=b"\x00"))
write("safetensors", "bad_metadata_not_string", safetensors([], metadata={"epochs": 3}))
write("safetensors", "bad_header_array", safetensors([], raw_header="[1,2,3]"))
# An empty tensor whose other sizes multiply past 2^63 passed every check (it holds 0 bytes) and
# then overflowed int64 while its strides were computed (UBSan: signed integer overflow).
write("safetensors", "crash_empty_tensor_stride_overflow",
      safetensors([("a", "F32", [0, 1 << 40, 1 << 40], 0, 0)]))
# Past 16 levels the header is rejected before anything prints it (printing recurses per level).
write("safetensors", "bad_deep_nesting",
      safetensors([], raw_header='{"a":{"dtype":"U8","shape":' + "[" * 40 + "]" * 40 + "}}"))

# ---- config: the shipped ds_configs and the malformed-input table's configs, plus edge cases ----
(ROOT / "config").mkdir(exist_ok=True)
for folder, prefix in ((REPO / "configs", ""), (REPO / "tests/inputs/configs", "bad_")):
    for path in sorted(folder.glob("*.json")):
        shutil.copyfile(path, ROOT / "config" / (prefix + path.stem))
write("config", "valid_micro_only", '{"train_micro_batch_size_per_gpu": 4}')
write("config", "valid_comments_and_auto", """// DeepSpeed configs may carry comments
{
  "train_micro_batch_size_per_gpu": 2, /* the total follows from the world size */
  "gradient_accumulation_steps": 1,
  "optimizer": {"type": "adamw", "params": {"lr": 5e-4, "betas": [0.9, 0.95], "eps": 1e-8}},
  "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 100, "warmup_num_steps": 10}},
  "zero_optimization": {"stage": 3, "overlap_comm": null, "reduce_bucket_size": 5e8,
                        "stage3_prefetch_bucket_size": "auto"},
  "gradient_clipping": 1.0,
  "activation_checkpointing": {"number_checkpoints": 2}
}""")
write("config", "valid_sgd_onecycle", json.dumps({
    "train_batch_size": 64, "gradient_accumulation_steps": 1,
    "optimizer": {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9, "nesterov": True}},
    "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.01, "cycle_max_lr": 0.1,
                                                 "cycle_first_step_size": 10}},
    "zero_allow_untested_optimizer": True, "fp16": {"enabled": False}, "bf16": {"enabled": False},
}))
write("config", "bad_batch_overflow", '{"train_micro_batch_size_per_gpu": 9223372036854775807, '
                                      '"gradient_accumulation_steps": 9223372036854775807}')
write("config", "bad_unterminated_string", '{"train_batch_size": "12')
# A number past double's range made nlohmann throw out_of_range, which escaped parse_config as
# something other than a ConfigError (found by fuzz_config; its own input is crash_fuzzed_*).
write("config", "crash_number_past_double_range", '{"train_micro_batch_size_per_gpu": 1e400}')
