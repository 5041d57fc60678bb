"""Run lm-evaluation-harness's own `loglikelihood_rolling` on a checkpoint and a corpus.

Executed by the lm-eval virtualenv's Python (bench/lmeval.py), never imported by the
benchmark: it needs only the standard library, torch and lm_eval, none of lensbatch.

    python bench/lmeval_run.py CHECKPOINT CORPUS.jsonl BATCH_SIZE OUT.json

OUT.json gets the seconds `loglikelihood_rolling` took on the whole corpus (after a
warm-up on its shortest document; model loading not counted), each document's
negative log-likelihood sum, and this process's peak RSS in MB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")


def main(argv: list[str]) -> None:
    import lm_eval
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    checkpoint, corpus, batch_size, out = argv
    with open(corpus, encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
    lm = HFLM(pretrained=checkpoint, device="cpu", dtype="float32",
              batch_size=int(batch_size))

    def requests(chosen: list[str]) -> list[Instance]:
        return [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,),
                         idx=i) for i, text in enumerate(chosen)]

    lm.loglikelihood_rolling(requests([min(texts, key=len)]), disable_tqdm=True)
    started = time.perf_counter()
    loglikelihoods = lm.loglikelihood_rolling(requests(texts), disable_tqdm=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(out, "w", encoding="utf-8") as result:
        json.dump({"seconds": seconds, "nll_sums": [-float(ll) for ll in loglikelihoods],
                   "peak_rss_mb": peak, "torch": torch.__version__,
                   "lm_eval": getattr(lm_eval, "__version__", "?"),
                   "max_length": int(lm.max_length)}, result)


if __name__ == "__main__":
    main(sys.argv[1:])
