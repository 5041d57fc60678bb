# syntax=docker/dockerfile:1
#
# lensbatch image: the `lensbatch` CLI (scheduler, worker, db upgrade).
#
# CPU image (default):
#   docker build -t lensbatch:latest .
# GPU image: torch from PyPI, whose Linux x86_64 wheel is the CUDA build:
#   docker build -t lensbatch-gpu:latest --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
# Any other pinned build works the same way, e.g.
#   --build-arg TORCH_SPEC=torch==2.13.0 --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
#
# torch is installed first, from TORCH_INDEX_URL, and then pinned with a constraint so
# that installing the project never swaps it for another build.

FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Non-root user; its cache directory exists in the image so that a named volume
# mounted there starts out owned by this user.
RUN groupadd --system --gid 10001 lensbatch \
 && useradd --system --uid 10001 --gid lensbatch --create-home --home-dir /home/lensbatch \
        --shell /usr/sbin/nologin lensbatch \
 && mkdir -p /home/lensbatch/.cache/lensbatch /home/lensbatch/.cache/huggingface \
 && chown -R lensbatch:lensbatch /home/lensbatch/.cache

# 1. torch alone: the largest layer, cached independently of the project's code.
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}" \
 && echo "${TORCH_SPEC}" > /etc/lensbatch-torch-constraint.txt

# 2. The project, with torch held at the build installed above.
WORKDIR /tmp/lensbatch-src
# .dockerignore lets in only what the install needs (pyproject.toml, README.md when
# present, alembic.ini and the four packages).
COPY . .
RUN pip install --constraint /etc/lensbatch-torch-constraint.txt . \
 && cd / && rm -rf /tmp/lensbatch-src \
 && python -c "import torch, lensbatch, scheduler.cli, worker.tasks; print('torch', torch.__version__)" \
 && lensbatch --help > /dev/null

# The image runs the installed package; the source tree is not kept.
WORKDIR /home/lensbatch
USER lensbatch
ENV HOME=/home/lensbatch \
    LENSBATCH_CACHE_DIR=/home/lensbatch/.cache/lensbatch \
    HF_HOME=/home/lensbatch/.cache/huggingface

ENTRYPOINT ["lensbatch"]
CMD ["--help"]
