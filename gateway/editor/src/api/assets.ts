// Browser uploads: CreateUpload reserves the asset and presigns S3 PUT URLs, the bytes go straight
// to S3 (XHR for upload progress), CompleteUpload verifies them.
import { useCallback, useEffect, useState } from "react";
import { AssetKind } from "../gen/viarte/type/v1/asset_pb";
import type { Asset, CreateUploadResponse } from "../gen/viarte/storage/v1/storage_pb";
import { storage } from "./client";
import { toUiError, type UiError } from "./errors";

async function sha256Hex(data: ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function put(url: string, body: Blob, headers: Record<string, string>, onProgress: (loaded: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers)) {
      if (!["host", "content-length"].includes(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () =>
      xhr.status >= 200 && xhr.status < 300
        ? resolve((xhr.getResponseHeader("ETag") ?? "").replaceAll('"', ""))
        : reject(new Error(`upload failed with HTTP ${xhr.status}`));
    xhr.onerror = () => reject(new Error("upload failed: the storage server could not be reached"));
    xhr.send(body);
  });
}

export async function uploadFile(file: File, onProgress: (fraction: number) => void): Promise<Asset> {
  const data = await file.arrayBuffer();
  const contentType = file.type || "application/octet-stream";
  const reservation: CreateUploadResponse = await storage.createUpload({
    name: file.name,
    contentType,
    sizeBytes: BigInt(file.size),
    sha256: await sha256Hex(data),
    requestId: crypto.randomUUID(),
  });
  const headers = { "content-type": contentType, ...reservation.requiredHeaders };
  const parts = [];
  if (reservation.parts.length === 0) {
    await put(reservation.url, file, headers, (loaded) => onProgress(loaded / file.size));
  } else {
    let offset = 0;
    for (const part of reservation.parts) {
      const size = Number(part.sizeBytes);
      const base = offset;
      const etag = await put(part.url, file.slice(offset, offset + size), headers, (loaded) => onProgress((base + loaded) / file.size));
      parts.push({ partNumber: part.partNumber, etag });
      offset += size;
    }
  }
  onProgress(1);
  const done = await storage.completeUpload({ assetId: reservation.assetId, parts });
  if (!done.asset) throw new Error("upload was not confirmed");
  return done.asset;
}

export function kindName(kind: AssetKind): "image" | "video" | "audio" | "other" {
  if (kind === AssetKind.IMAGE) return "image";
  if (kind === AssetKind.VIDEO) return "video";
  if (kind === AssetKind.AUDIO) return "audio";
  return "other";
}

export function useAssets() {
  const [assets, setAssets] = useState<Asset[]>([]);
  const [error, setError] = useState<UiError | null>(null);
  const [loading, setLoading] = useState(true);
  const reload = useCallback(async () => {
    try {
      const all: Asset[] = [];
      let pageToken = "";
      do {
        const page = await storage.listAssets({ pageSize: 100, pageToken });
        all.push(...page.assets);
        pageToken = page.nextPageToken;
      } while (pageToken && all.length < 1000);
      setAssets(all);
      setError(null);
    } catch (err) {
      setError(toUiError(err));
    } finally {
      setLoading(false);
    }
  }, []);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { assets, error, loading, reload, setAssets };
}

const urlCache = new Map<string, { url: string; expires: number }>();

// A presigned GET URL (cached until shortly before it expires).
export async function downloadUrl(assetId: string, options: { thumbnail?: boolean; attachment?: boolean } = {}): Promise<string> {
  const key = `${assetId}:${options.thumbnail ? "t" : ""}${options.attachment ? "a" : ""}`;
  const hit = urlCache.get(key);
  if (hit && hit.expires > Date.now()) return hit.url;
  const reply = await storage.getDownloadUrl({ assetId, thumbnail: options.thumbnail ?? false, attachment: options.attachment ?? false, expireSeconds: 3600 });
  urlCache.set(key, { url: reply.url, expires: Date.now() + 50 * 60_000 });
  return reply.url;
}
