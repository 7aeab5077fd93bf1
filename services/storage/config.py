"""Configuration of the storage service (environment prefix VIARTE_STORAGE_, see services.kit.config)."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.config import Secret, ServiceConfig

__all__ = ["StorageConfig"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class StorageConfig(ServiceConfig):
    service_name = "storage"

    port: int = 50052
    metrics_port: int = 9102
    # Any SQLAlchemy URL; "" = sqlite:///<data_dir>/storage.db.
    database_url: str = ""

    # S3: any S3-compatible server (AWS, MinIO, Ceph, SeaweedFS). Path-style addressing.
    s3_endpoint: str = "http://127.0.0.1:8333"
    # Host that browsers use in presigned URLs ("" = s3_endpoint), e.g. behind a reverse proxy.
    s3_public_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_bucket: str = "viarte-assets"
    s3_access_key: str = "viarte-dev"
    s3_secret_key: Secret = Secret("viarte-dev-secret")
    # Seconds before a connection attempt / a read counts as S3 being unavailable.
    s3_connect_timeout_seconds: float = 2.0
    s3_read_timeout_seconds: float = 30.0
    s3_max_attempts: int = 2
    # Threads for blocking boto3 calls (their own pool: a slow S3 must not starve database work).
    s3_threads: int = 32
    # SigV4 over the payload too (a second sha256 of every byte sent, beside the service's own).
    # Off: each write still carries a CRC32 of its body (x-amz-checksum-crc32; a signed header on an
    # http endpoint, an aws-chunked trailer on https, where botocore never hashes the payload
    # anyway), which S3 checks on receipt (BadDigest), so corruption in transit is still refused;
    # the signature still authenticates every request. On where the S3 hop crosses an untrusted
    # network without TLS, so a body cannot be swapped for one with the same CRC32 (issue 20).
    s3_sign_payload: bool = False
    # Dev convenience: `python -m services.storage` starts SeaweedFS itself (data in <data_dir>/s3),
    # listening on the port of s3_endpoint, with the credentials above.
    s3_embedded: bool = False

    # Limits.
    max_object_bytes: int = 2048 * MIB
    quota_bytes: int = 20 * 1024 * MIB
    quota_count: int = 10_000

    # Browser uploads: declared sizes above the threshold get one presigned URL per part.
    multipart_threshold_bytes: int = 64 * MIB
    upload_part_bytes: int = 16 * MIB
    upload_expire_seconds: int = 3600
    # Presigned GET: default and cap (S3 SigV4 allows at most 7 days).
    download_url_expire_seconds: int = 900
    download_url_max_expire_seconds: int = 7 * 86_400

    # Streaming through the service: part size of the S3 multipart upload (>= 5 MiB), parts in
    # flight at once, and the chunk size of DownloadAsset messages. Memory per stream is bounded by
    # about stream_part_bytes * (stream_parts_in_flight + 1).
    stream_part_bytes: int = 5 * MIB
    stream_parts_in_flight: int = 2
    download_chunk_bytes: int = 1 * MIB

    # Media probing.
    ffprobe_binary: str = "ffprobe"
    ffmpeg_binary: str = "ffmpeg"
    media_timeout_seconds: float = 60.0
    thumbnail_max_px: int = 320

    # Janitor: expired pending uploads, interrupted deletions and orphaned objects.
    janitor_interval_seconds: float = 60.0
    # An object without metadata older than this is an orphan (younger ones may be mid-upload).
    orphan_grace_seconds: float = 3600.0
    # The orphan sweep lists the whole bucket, so it runs less often than the rest of the janitor.
    orphan_sweep_interval_seconds: float = 3600.0

    def database(self) -> str:
        return self.database_url or self.sqlite_url()

    def presign_endpoint(self) -> str:
        return self.s3_public_endpoint or self.s3_endpoint
