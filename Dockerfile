# The GPU deployment: onnxruntime-gpu for Parakeet and Canary, CTranslate2's CUDA build
# (its PyPI wheels carry it) for Whisper. Build: docker compose build; see README.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The lock files, not requirements*.txt: the whole dependency tree, each file checked against
# its hash (regenerate them with `make lock`).
COPY requirements.lock requirements-gpu.lock ./

# faster-whisper depends on the CPU `onnxruntime` package, and onnxruntime-gpu installs the
# same `onnxruntime` module: two packages would overwrite each other's files. So install
# everything, remove the CPU package, add the GPU one (requirements-gpu.lock) without
# dependencies (they are the same ones), and fail the build unless exactly one onnxruntime
# package is left.
RUN python3 -m venv "$VIRTUAL_ENV" \
 && pip install --require-hashes -r requirements.lock \
 && pip uninstall -y onnxruntime \
 && pip install --no-deps --require-hashes -r requirements-gpu.lock \
 && test "$(pip list --format=freeze | grep -ci '^onnxruntime')" = 1 \
 && python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers()"

COPY . .

ENV USE_GPU=true \
    MEDIA_DIR=/data/media \
    TDT_MODEL_PATH=/models/parakeet-tdt \
    CANARY_MODEL_PATH=/models/canary-1b \
    DIAR_MODEL_PATH=/models/sortformer \
    STATIC_ROOT=/app/staticfiles
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python manage.py serve --host 0.0.0.0"]
