"""The official `openai` Python client against `kiln serve`, unchanged (scripts/test_openai_client.sh).

Usage: python scripts/test_openai_client.py BASE_URL API_KEY OFFLINE_NPY TEXTS_FILE

OFFLINE_NPY holds `kiln embed`'s vectors of TEXTS_FILE's lines: every served vector must equal
its offline row (<= 1e-5), whatever the client's encoding (it asks for base64 by default).
Exits 1 on the first failed check, naming it.
"""

import math
import struct
import sys

import openai

base_url, api_key, offline_npy, texts_file = sys.argv[1:5]
texts = open(texts_file, encoding="utf-8").read().splitlines()


def read_npy(path):
    raw = open(path, "rb").read()
    assert raw[:6] == b"\x93NUMPY", "not an npy file"
    header_len = struct.unpack("<H", raw[8:10])[0]
    header = raw[10 : 10 + header_len].decode("latin1")
    shape = eval(header)["shape"]  # the npy header is a Python literal
    values = struct.unpack(f"<{shape[0] * shape[1]}f", raw[10 + header_len :])
    return [list(values[i * shape[1] : (i + 1) * shape[1]]) for i in range(shape[0])]


offline = read_npy(offline_npy)
assert len(offline) == len(texts)


def check(name, condition):
    if not condition:
        print(f"FAILED: {name}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {name}")


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


client = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)

# A list of texts, the client's default encoding (base64, decoded by the client).
answer = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
check("one vector per text, in order", [d.index for d in answer.data] == list(range(len(texts))))
check("base64 vectors equal kiln embed's", all(
    max_diff(d.embedding, offline[i]) <= 1e-5 for i, d in enumerate(answer.data)))
check("usage counts the prompt tokens", answer.usage.prompt_tokens > len(texts)
      and answer.usage.total_tokens == answer.usage.prompt_tokens)
check("the model is echoed", answer.model == "all-MiniLM-L6-v2")

# One text, floats.
one = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0], encoding_format="float")
check("a single text as floats", len(one.data) == 1 and max_diff(one.data[0].embedding, offline[0]) <= 1e-5)

# Matryoshka: dimensions truncates then re-normalizes.
short = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[1], dimensions=64)
vector = short.data[0].embedding
prefix = offline[1][:64]
norm = math.sqrt(sum(x * x for x in prefix))
check("dimensions=64 gives the renormalized prefix",
      len(vector) == 64 and max_diff(vector, [x / norm for x in prefix]) <= 1e-5)

# Bad requests become the client's typed errors (4xx), never a 5xx.
try:
    client.embeddings.create(model="all-MiniLM-L6-v2", input=[])
    check("an empty input list is refused", False)
except openai.UnprocessableEntityError as e:
    check("an empty input list is a 422 with the JSON error body", e.status_code == 422
          and e.response.json()["error_type"] == "validation")
try:
    client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0], dimensions=100000)
    check("dimensions over the model's is refused", False)
except openai.UnprocessableEntityError:
    check("dimensions over the model's is a 422", True)
wrong_key = openai.OpenAI(base_url=base_url + "/v1", api_key="not-" + api_key, max_retries=0)
try:
    wrong_key.embeddings.create(model="all-MiniLM-L6-v2", input="x")
    check("a wrong API key is refused", False)
except openai.AuthenticationError as e:
    check("a wrong API key is a 401", e.status_code == 401)
print("openai client: all checks passed")
