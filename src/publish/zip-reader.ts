/**
 * Reads a few named files out of a zip archive that an untrusted party made (a fork's artifact), safely:
 * - nothing is extracted to disk, so no path traversal, no symlinks, no disk filling;
 * - each wanted entry is inflated with `maxOutputLength`, so a zip bomb stops at the cap instead of eating memory;
 * - the CRC-32 of what was read is checked;
 * - only the central directory is trusted for sizes and offsets, and every offset is bounds-checked.
 *
 * Why our own reader: `@actions/artifact` would extract the whole archive (with unzip-stream, a transitive dependency);
 * we want two small JSON files and hard limits. Zip64 is refused: our artifacts are capped far below 4 GiB.
 */
import { open } from "node:fs/promises";
import { crc32, inflateRawSync } from "node:zlib";
import { BadInputError } from "../util/errors.js";

const EOCD_SIG = 0x06054b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;
const EOCD_MIN = 22;
const MAX_COMMENT = 0xffff;

export interface ZipEntryLimits {
  /** Largest uncompressed size accepted for any wanted entry, in bytes. */
  maxEntryBytes: number;
  /** Most central-directory entries looked at (a hostile archive can list millions). Default 10,000. */
  maxEntries?: number;
}

function bad(zipPath: string, why: string): BadInputError {
  return new BadInputError(`is not an archive tokengate can read: ${why}`, {
    subject: zipPath,
    hint: "the artifact should come from a `mode: run` step of the same tokengate version",
  });
}

/**
 * Returns the contents of the wanted entries (by exact path inside the archive) that exist; missing ones are absent.
 * Throws BadInputError for a malformed archive, an entry over `maxEntryBytes`, or a CRC mismatch.
 */
export async function readZipEntries(
  zipPath: string,
  wanted: string[],
  limits: ZipEntryLimits,
): Promise<Map<string, Buffer>> {
  const fh = await open(zipPath, "r");
  try {
    const { size } = await fh.stat();
    const read = async (pos: number, len: number): Promise<Buffer> => {
      if (pos < 0 || len < 0 || pos + len > size)
        throw bad(zipPath, `a record points outside the file (${pos}+${len} > ${size})`);
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, pos);
      if (bytesRead !== len) throw bad(zipPath, "the file ended early");
      return buf;
    };

    // End of central directory: the last 22 bytes, or earlier when the archive has a comment.
    const tailLen = Math.min(size, EOCD_MIN + MAX_COMMENT);
    if (tailLen < EOCD_MIN) throw bad(zipPath, "too small to be a zip file");
    const tail = await read(size - tailLen, tailLen);
    let eocd = -1;
    for (let i = tailLen - EOCD_MIN; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD_SIG) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad(zipPath, "no end-of-central-directory record");
    const entryCount = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (entryCount === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff)
      throw bad(zipPath, "zip64 archives are not supported");
    if (entryCount > (limits.maxEntries ?? 10_000))
      throw bad(zipPath, `${entryCount} entries (more than ${limits.maxEntries ?? 10_000})`);

    const cd = await read(cdOffset, cdSize);
    const want = new Set(wanted);
    const out = new Map<string, Buffer>();
    let p = 0;
    for (let n = 0; n < entryCount; n++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CEN_SIG) throw bad(zipPath, "a damaged central directory");
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      const compressedSize = cd.readUInt32LE(p + 20);
      const uncompressedSize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      const localOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLen > cd.length) throw bad(zipPath, "a damaged central directory");
      const name = cd.toString("utf8", p + 46, p + 46 + nameLen);
      p += 46 + nameLen + extraLen + commentLen;
      if (!want.has(name) || out.has(name)) continue;

      if (flags & 0x1) throw bad(zipPath, `${name} is encrypted`);
      if (compressedSize === 0xffffffff || uncompressedSize === 0xffffffff || localOffset === 0xffffffff) {
        throw bad(zipPath, "zip64 entries are not supported");
      }
      if (uncompressedSize > limits.maxEntryBytes) {
        throw new BadInputError(
          `${name} is ${uncompressedSize} bytes, over the ${limits.maxEntryBytes}-byte limit for artifacts from other runs`,
          {
            subject: zipPath,
            hint: "a real results file is far smaller; the artifact may not come from tokengate",
          },
        );
      }
      const local = await read(localOffset, 30);
      if (local.readUInt32LE(0) !== LOC_SIG) throw bad(zipPath, `no local header for ${name}`);
      const dataStart = localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      const raw = await read(dataStart, compressedSize);
      let data: Buffer;
      if (method === 0) {
        data = raw;
      } else if (method === 8) {
        try {
          // maxOutputLength makes inflate stop (and throw) at the cap: the defence against zip bombs, whose central
          // directory may lie about the uncompressed size.
          data = inflateRawSync(raw, { maxOutputLength: limits.maxEntryBytes });
        } catch (e) {
          throw bad(zipPath, `${name} does not inflate within ${limits.maxEntryBytes} bytes (${(e as Error).message})`);
        }
      } else {
        throw bad(zipPath, `${name} uses compression method ${method}`);
      }
      if (data.length !== uncompressedSize)
        throw bad(zipPath, `${name} is ${data.length} bytes, the directory says ${uncompressedSize}`);
      if (crc32(data) >>> 0 !== crc) throw bad(zipPath, `${name} fails its CRC-32 check`);
      out.set(name, data);
    }
    return out;
  } finally {
    await fh.close();
  }
}
