"""colearn's ``colearn.utils.data``: split a list into consecutive fractions, and find a
data set locally or fetch it from a Google Cloud Storage bucket."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The environment variable naming a service-account key; without it, buckets are read
#: anonymously (as in colearn).
GAUTH_ENV_VAR_NAME = "GOOGLE_APPLICATION_CREDENTIALS"

def split_list_into_fractions(input_list: Any, fractions_list: Sequence[float],
                              min_part_size: int = 1) -> list[Any]:
    """Consecutive slices of ``input_list``, one per fraction: each is
    ``int(len(input_list) * fraction)`` long, the last ones cut short at the end of the
    list (fractions summing to less than 1 leave the tail out). A part shorter than
    ``min_part_size`` raises ``ValueError``. ``input_list`` is anything sliceable with a
    length (a list, a NumPy array)."""
    n = len(input_list)
    parts: list[Any] = []
    start = 0
    for index, fraction in enumerate(fractions_list):
        end = min(start + int(n * fraction), n)
        if end - start < min_part_size:
            raise ValueError(f"Insufficient data in this part: part {index} has "
                             f"{end - start} items, fewer than min_part_size={min_part_size}")
        parts.append(input_list[start:end])
        start = end
    return parts


def get_data(data_dir: str | Path, download_to: str = "/tmp/data_download") -> str | Path:
    """Where the data are: ``gs://bucket/prefix`` is downloaded (every non-empty object
    under the prefix) below ``download_to``, and ``download_to/prefix`` returned;
    ``file://path`` gives ``path``; anything else is returned as it is."""
    text = str(data_dir)
    if text.startswith("gs://"):
        return _download_from_gcloud(text, download_to)
    if text.startswith("file://"):
        return text[len("file://"):]
    return data_dir


def _download_from_gcloud(cloud_data_dir: str, local_data_dir: str) -> Path:
    try:
        from google.cloud import storage
    except ImportError as exc:
        raise ImportError(f"{cloud_data_dir} is in Google Cloud Storage: install "
                          "google-cloud-storage to download it") from exc
    bucket_name, _, prefix = cloud_data_dir[len("gs://"):].partition("/")
    if not bucket_name or not prefix:
        raise ValueError(f"expected gs://bucket/prefix, got {cloud_data_dir!r}")
    log.info("downloading gs://%s/%s to %s", bucket_name, prefix, local_data_dir)
    if os.getenv(GAUTH_ENV_VAR_NAME, ""):
        client = storage.Client()
    else:
        client = storage.Client.create_anonymous_client()
    root = Path(local_data_dir).resolve()
    downloaded = 0
    for blob in client.bucket(bucket_name).list_blobs(prefix=prefix):
        if not blob.size:
            log.info("skipping empty object %s", blob.name)
            continue
        target = (root / blob.name).resolve()
        if not target.is_relative_to(root):  # a name with ".." or an absolute path
            raise ValueError(f"refusing object {blob.name!r}: it would be written outside "
                             f"{root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
        downloaded += 1
    if downloaded == 0:
        raise FileNotFoundError(f"No data in folder: {cloud_data_dir}")
    return Path(local_data_dir) / prefix
