#!/usr/bin/env python3
"""Drives a running `tuna serve` with the `openai` Python client (PyPI `openai`, installed by
scripts/pydeps.sh): model listing, chat whole and streamed, completions, embeddings, and an
unknown model answered with OpenAI's error. Prints one JSON line of what it got; exits non-zero
on the first mismatch.

usage: check_openai_client.py BASE_URL MODEL [EMBED_MODEL]
"""
import json
import sys

import openai


def main():
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120)

    ids = [m.id for m in client.models.list()]
    assert model in ids, ids

    messages = [{"role": "user", "content": "say hi twice"}]
    whole = client.chat.completions.create(
        model=model, messages=messages, max_tokens=8, temperature=0
    )
    text = whole.choices[0].message.content
    assert whole.choices[0].finish_reason in ("stop", "length"), whole
    assert whole.usage.completion_tokens >= 1, whole.usage

    pieces, usage = [], None
    for chunk in client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        elif chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert "".join(pieces) == text, (pieces, text)
    assert usage.completion_tokens == whole.usage.completion_tokens, (usage, whole.usage)

    done = client.completions.create(model=model, prompt="the film", max_tokens=5, temperature=0)
    completion = done.choices[0].text
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=model, prompt="the film", max_tokens=5, temperature=0, stream=True
        )
    )
    assert streamed == completion, (streamed, completion)

    emb = client.embeddings.create(model=sys.argv[3] if len(sys.argv) > 3 else model, input=["a", "b c"])
    dims = [len(e.embedding) for e in emb.data]
    assert len(dims) == 2 and dims[0] == dims[1] > 0, dims

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body

    print(json.dumps({"models": ids, "chat": text, "completion": completion, "embedding_dims": dims[0]}))


if __name__ == "__main__":
    main()
