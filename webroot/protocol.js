// The nanokvmd wire protocol in JavaScript: a postcard codec for exactly the messages in
// protocol/src (lib.rs, settings.rs, video.rs). Values have the shape serde gives them in
// externally-tagged JSON (see protocol/golden.json), except that byte slices are Uint8Array:
//   unit variant    -> "Name"                      e.g. "H264"
//   newtype variant -> { Name: value }             e.g. { Settings: {...} }
//   struct variant  -> { Name: { field: value } }  e.g. { Hello: { version: 1, visible: true } }
//
// Postcard, as far as these types need it: u8 is one raw byte; u16/u32/u64 and enum variant
// indices are LEB128 varints; bool is one byte 0 or 1; a byte slice or string is a varint length
// followed by the bytes; struct fields follow one another in declaration order, untagged.
// u64 values travel as JS Numbers, so values above 2^53 are refused rather than rounded
// (µs timestamps reach that after 285 years).
//
// The schema below mirrors the Rust declarations one to one, in the same order: postcard has no
// field names or type tags on the wire, so order is the whole contract. Only append.

export const PROTOCOL_VERSION = 1;

/** Largest client message the server accepts (`MAX_CLIENT_MSG` in lib.rs). */
export const MAX_CLIENT_MSG = 64 * 1024;

/** Allowed ranges of the stream settings, as `StreamSettings::{FPS, GOP, ...}` in settings.rs. */
export const SETTINGS_LIMITS = Object.freeze({
  fps: { min: 5, max: 60 },
  gop: { min: 30, max: 300 },
  h264_bitrate_kbps: { min: 200, max: 20000 },
  jpeg_quality: { min: 10, max: 100 },
});

export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

// ---- reading and writing bytes ------------------------------------------------------------

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  byte() {
    if (this.pos >= this.bytes.length) {
      throw new ProtocolError(`truncated: needed a byte at offset ${this.pos}`);
    }
    return this.bytes[this.pos++];
  }

  /** A view of the next `len` bytes, not a copy: video payloads are large. */
  take(len) {
    if (len > this.bytes.length - this.pos) {
      throw new ProtocolError(
        `truncated: needed ${len} bytes at offset ${this.pos}, ${this.bytes.length - this.pos} left`,
      );
    }
    const view = this.bytes.subarray(this.pos, this.pos + len);
    this.pos += len;
    return view;
  }
}

class Writer {
  constructor() {
    this.parts = [];
    this.small = [];
    this.length = 0;
  }

  byte(b) {
    this.small.push(b);
    this.length += 1;
  }

  bytes(view) {
    this.flushSmall();
    this.parts.push(view);
    this.length += view.length;
  }

  flushSmall() {
    if (this.small.length > 0) {
      this.parts.push(Uint8Array.from(this.small));
      this.small = [];
    }
  }

  finish() {
    this.flushSmall();
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

// ---- primitive types ----------------------------------------------------------------------

function checkInteger(value, max, what) {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new ProtocolError(`${what}: expected an integer in 0..=${max}, got ${String(value)}`);
  }
}

/**
 * An unsigned LEB128 varint of `bits` bits, decoded like postcard: at most ceil(bits/7) bytes,
 * and the last one may not carry bits beyond the type's width. Arithmetic is done with
 * multiplication, not bit operators, which would truncate to 32 bits.
 */
function varint(bits, name) {
  const maxBytes = Math.ceil(bits / 7);
  const maxLastByte = (1 << (bits - 7 * (maxBytes - 1))) - 1;
  const max = bits <= 53 ? 2 ** bits - 1 : Number.MAX_SAFE_INTEGER;
  return {
    encode(w, value) {
      checkInteger(value, max, name);
      let v = value;
      while (v >= 0x80) {
        w.byte((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
      }
      w.byte(v);
    },
    decode(r) {
      let value = 0;
      for (let i = 0; i < maxBytes; i++) {
        const b = r.byte();
        value += (b & 0x7f) * 2 ** (7 * i);
        if ((b & 0x80) === 0) {
          if (i === maxBytes - 1 && b > maxLastByte) {
            throw new ProtocolError(`bad varint: ${name} out of range`);
          }
          if (value > max) {
            throw new ProtocolError(`${name} ${value} is above what a JS Number holds exactly`);
          }
          return value;
        }
      }
      throw new ProtocolError(`bad varint: ${name} longer than ${maxBytes} bytes`);
    },
  };
}

const u8 = {
  encode(w, value) {
    checkInteger(value, 0xff, 'u8');
    w.byte(value);
  },
  decode: (r) => r.byte(),
};
const u16 = varint(16, 'u16');
const u32 = varint(32, 'u32');
const u64 = varint(64, 'u64');
// A byte slice's length is a usize, which postcard writes as a varint of 64 bits.
const usize = varint(64, 'length');

// postcard writes i8 as its two's-complement byte and wider signed integers as zigzag varints.
const i8 = {
  encode(w, value) {
    if (!Number.isInteger(value) || value < -128 || value > 127) {
      throw new ProtocolError(`i8: ${String(value)} is out of range`);
    }
    w.byte(value & 0xff);
  },
  decode(r) {
    const b = r.byte();
    return b > 127 ? b - 256 : b;
  },
};

const i16 = {
  encode(w, value) {
    if (!Number.isInteger(value) || value < -32768 || value > 32767) {
      throw new ProtocolError(`i16: ${String(value)} is out of range`);
    }
    u16.encode(w, value < 0 ? -2 * value - 1 : 2 * value);
  },
  decode(r) {
    const z = u16.decode(r);
    return z & 1 ? -(z + 1) / 2 : z / 2;
  },
};

const bool = {
  encode(w, value) {
    if (typeof value !== 'boolean') throw new ProtocolError(`bool: got ${String(value)}`);
    w.byte(value ? 1 : 0);
  },
  decode(r) {
    const b = r.byte();
    if (b > 1) throw new ProtocolError(`bad bool byte ${b}`);
    return b === 1;
  },
};

const bytes = {
  encode(w, value) {
    if (!(value instanceof Uint8Array)) throw new ProtocolError('bytes: expected a Uint8Array');
    usize.encode(w, value.length);
    w.bytes(value);
  },
  decode: (r) => r.take(usize.decode(r)),
};

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

const str = {
  encode(w, value) {
    if (typeof value !== 'string') throw new ProtocolError('str: expected a string');
    bytes.encode(w, utf8Encoder.encode(value));
  },
  decode(r) {
    const raw = bytes.decode(r);
    try {
      return utf8Decoder.decode(raw);
    } catch {
      throw new ProtocolError('string is not valid UTF-8');
    }
  },
};

// ---- composite types ----------------------------------------------------------------------

/** `Option<T>`: `null` for `None`, the value itself for `Some`. */
function option(type) {
  return {
    encode(w, value) {
      if (value === null || value === undefined) {
        w.byte(0);
      } else {
        w.byte(1);
        type.encode(w, value);
      }
    },
    decode(r) {
      const tag = r.byte();
      if (tag > 1) throw new ProtocolError(`bad option tag ${tag}`);
      return tag === 1 ? type.decode(r) : null;
    },
  };
}

/** A struct: its fields in declaration order, as [name, type] pairs. */
function struct(name, fields) {
  const names = new Set(fields.map(([field]) => field));
  return {
    encode(w, value) {
      if (value === null || typeof value !== 'object') {
        throw new ProtocolError(`${name}: expected an object`);
      }
      for (const key of Object.keys(value)) {
        if (!names.has(key)) throw new ProtocolError(`${name}: unknown field ${key}`);
      }
      for (const [field, type] of fields) {
        if (!(field in value)) throw new ProtocolError(`${name}: missing field ${field}`);
        type.encode(w, value[field]);
      }
    },
    decode(r) {
      const value = {};
      for (const [field, type] of fields) value[field] = type.decode(r);
      return value;
    },
  };
}

/**
 * An enum: its variants in declaration order (the index is the wire tag). A variant's type is
 * null for a unit variant, or the type of its content (a struct for struct variants, anything
 * for newtype variants); both of the latter are `{ Name: content }` in JS.
 */
function enumeration(name, variants) {
  const index = new Map(variants.map(([variant], i) => [variant, i]));
  return {
    encode(w, value) {
      let variant;
      let content;
      if (typeof value === 'string') {
        variant = value;
      } else if (value !== null && typeof value === 'object' && Object.keys(value).length === 1) {
        [[variant, content]] = Object.entries(value);
      } else {
        throw new ProtocolError(`${name}: expected "Variant" or { Variant: ... }`);
      }
      const i = index.get(variant);
      if (i === undefined) throw new ProtocolError(`${name}: unknown variant ${variant}`);
      const type = variants[i][1];
      if ((type === null) !== (typeof value === 'string')) {
        throw new ProtocolError(`${name}::${variant}: wrong shape for this variant`);
      }
      u32.encode(w, i);
      if (type !== null) type.encode(w, content);
    },
    decode(r) {
      const i = u32.decode(r);
      if (i >= variants.length) throw new ProtocolError(`${name}: bad variant index ${i}`);
      const [variant, type] = variants[i];
      return type === null ? variant : { [variant]: type.decode(r) };
    },
  };
}

// ---- the messages (protocol/src) ----------------------------------------------------------

const Codec = enumeration('Codec', [
  ['H264', null],
  ['Jpeg', null],
]);

const KeyframeReason = enumeration('KeyframeReason', [
  ['DecoderError', null],
  ['Gap', null],
]);

const Resolution = enumeration('Resolution', [
  ['P720', null],
  ['P1080', null],
  ['Native', null],
]);

const StreamSettings = struct('StreamSettings', [
  ['resolution', Resolution],
  ['fps', u8],
  ['h264_bitrate_kbps', u32],
  ['gop', u16],
  ['jpeg_quality', u8],
]);

const VideoHeader = struct('VideoHeader', [
  ['codec', Codec],
  ['keyframe', bool],
  ['seq', u32],
  ['capture_us', u64],
  ['width', u16],
  ['height', u16],
]);

const VideoStatus = struct('VideoStatus', [
  ['signal', bool],
  ['source_width', u16],
  ['source_height', u16],
  ['width', u16],
  ['height', u16],
  ['fps', u8],
  ['bitrate_kbps', u32],
  ['gop', u16],
]);

const ErrorCode = enumeration('ErrorCode', [
  ['BadMessage', null],
  ['UnsupportedVersion', null],
  ['InvalidSettings', null],
  ['TooLarge', null],
  ['Unavailable', null],
  ['Busy', null],
  ['CodecUnavailable', null],
]);

const KeyboardLayout = enumeration('KeyboardLayout', [
  ['Us', null],
  ['De', null],
  ['Fr', null],
  ['Uk', null],
]);

const HidLink = enumeration('HidLink', [
  ['Ready', null],
  ['Retrying', null],
  ['Absent', null],
]);

const KeyboardLeds = struct('KeyboardLeds', [
  ['num_lock', bool],
  ['caps_lock', bool],
  ['scroll_lock', bool],
]);

const HidStatus = struct('HidStatus', [
  ['keyboard', HidLink],
  ['mouse', HidLink],
  ['absolute', HidLink],
  ['leds', option(KeyboardLeds)],
]);

const AtxAction = enumeration('AtxAction', [
  ['Power', null],
  ['PowerLong', struct('PowerLong', [['ms', u32]])],
  ['Reset', null],
]);

const AtxKind = enumeration('AtxKind', [
  ['Power', null],
  ['PowerLong', null],
  ['Reset', null],
]);

const AtxState = struct('AtxState', [
  ['power_led', bool],
  ['hdd_led', option(bool)],
  ['busy', option(AtxKind)],
]);

const ClientMsg = enumeration('ClientMsg', [
  ['Hello', struct('Hello', [['version', u16], ['visible', bool]])],
  ['Ping', struct('Ping', [['client_time_us', u64]])],
  ['RequestKeyframe', struct('RequestKeyframe', [['reason', KeyframeReason]])],
  ['Visibility', struct('Visibility', [['visible', bool]])],
  ['SetStreamSettings', StreamSettings],
  ['KeyDown', struct('KeyDown', [['usage', u8]])],
  ['KeyUp', struct('KeyUp', [['usage', u8]])],
  ['ReleaseAll', null],
  ['PointerAbs', struct('PointerAbs', [['x', u16], ['y', u16], ['buttons', u8], ['wheel', i8]])],
  ['PointerRel', struct('PointerRel', [['dx', i16], ['dy', i16], ['buttons', u8], ['wheel', i8]])],
  ['Paste', struct('Paste', [['text', str], ['layout', KeyboardLayout]])],
  ['KeepAlive', null],
  ['Atx', AtxAction],
]);

const ServerMsg = enumeration('ServerMsg', [
  ['Hello', struct('Hello', [['version', u16], ['settings', StreamSettings]])],
  ['Video', struct('Video', [['header', VideoHeader], ['data', bytes]])],
  ['Pong', struct('Pong', [['client_time_us', u64], ['server_time_us', u64]])],
  ['VideoStatus', VideoStatus],
  ['Settings', StreamSettings],
  ['Error', struct('Error', [['code', ErrorCode], ['message', str]])],
  ['HidStatus', HidStatus],
  ['PasteDone', struct('PasteDone', [['typed', u32], ['unknown', str]])],
  ['Atx', AtxState],
  ['AtxDone', struct('AtxDone', [['action', AtxKind], ['ok', bool], ['message', str]])],
]);

// ---- entry points -------------------------------------------------------------------------

function asBytes(input) {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  throw new ProtocolError('expected a Uint8Array or an ArrayBuffer');
}

/** Decodes exactly one message; trailing bytes are an error, as in `decode_exact`. */
function decodeExact(type, input) {
  const r = new Reader(asBytes(input));
  const value = type.decode(r);
  if (r.pos !== r.bytes.length) {
    throw new ProtocolError(`${r.bytes.length - r.pos} trailing bytes`);
  }
  return value;
}

function encode(type, value) {
  const w = new Writer();
  type.encode(w, value);
  return w.finish();
}

export function encodeClientMsg(msg) {
  return encode(ClientMsg, msg);
}

export function decodeClientMsg(input) {
  const length = asBytes(input).length;
  if (length > MAX_CLIENT_MSG) {
    throw new ProtocolError(`${length} bytes, the limit is ${MAX_CLIENT_MSG}`);
  }
  return decodeExact(ClientMsg, input);
}

export function encodeServerMsg(msg) {
  return encode(ServerMsg, msg);
}

/** `Video.data` is a view into `input`, not a copy. */
export function decodeServerMsg(input) {
  return decodeExact(ServerMsg, input);
}
