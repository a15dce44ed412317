// webroot/protocol.js against the golden vectors that the Rust side writes
// (protocol/golden.json): every vector must decode to its value and encode to its bytes, and
// malformed input must be refused the way postcard refuses it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  decodeClientMsg,
  decodeServerMsg,
  encodeClientMsg,
  encodeServerMsg,
  MAX_CLIENT_MSG,
  ProtocolError,
} from '../../webroot/protocol.js';

const golden = JSON.parse(readFileSync(new URL('../../protocol/golden.json', import.meta.url), 'utf8'));

const codecs = {
  client: { encode: encodeClientMsg, decode: decodeClientMsg },
  server: { encode: encodeServerMsg, decode: decodeServerMsg },
};

const fromHex = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
const toHex = (bytes) => Buffer.from(bytes).toString('hex');

// The only sequences in the protocol are byte slices, which serde_json writes as number
// arrays and protocol.js represents as Uint8Array.
function withByteArrays(value) {
  if (Array.isArray(value)) return Uint8Array.from(value);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withByteArrays(v)]));
  }
  return value;
}

function withPlainArrays(value) {
  if (value instanceof Uint8Array) return Array.from(value);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withPlainArrays(v)]));
  }
  return value;
}

test('golden.json covers every message direction', () => {
  assert.ok(golden.some((v) => v.dir === 'client'));
  assert.ok(golden.some((v) => v.dir === 'server'));
  for (const v of golden) assert.ok(v.dir in codecs, `${v.name}: unknown dir ${v.dir}`);
});

for (const vector of golden) {
  const { encode, decode } = codecs[vector.dir];

  test(`${vector.name}: decodes to the golden value`, () => {
    assert.deepStrictEqual(withPlainArrays(decode(fromHex(vector.hex))), vector.value);
  });

  test(`${vector.name}: encodes to the golden bytes`, () => {
    assert.equal(toHex(encode(withByteArrays(vector.value))), vector.hex);
  });

  test(`${vector.name}: every truncation is refused`, () => {
    const bytes = fromHex(vector.hex);
    for (let len = 0; len < bytes.length; len++) {
      assert.throws(() => decode(bytes.subarray(0, len)), ProtocolError, `prefix of ${len} bytes`);
    }
  });

  test(`${vector.name}: trailing bytes are refused`, () => {
    const bytes = fromHex(`${vector.hex}00`);
    assert.throws(() => decode(bytes), { name: 'ProtocolError', message: /1 trailing bytes/ });
  });
}

test('Video data is a view into the received buffer, not a copy', () => {
  const idr = golden.find((v) => v.name === 'server_video_idr');
  const bytes = fromHex(idr.hex);
  const { Video } = decodeServerMsg(bytes.buffer);
  assert.equal(Video.data.buffer, bytes.buffer);
  assert.equal(Video.data.byteOffset, bytes.length - Video.data.length);
});

test('a bool byte other than 0 or 1 is refused', () => {
  // Hello { version: 1, visible: 2 }
  assert.throws(() => decodeClientMsg(fromHex('000102')), { message: /bad bool byte 2/ });
  // Video header with keyframe = 2
  assert.throws(() => decodeServerMsg(fromHex('010002000000000000')), { message: /bad bool/ });
});

test('an unknown variant index is refused', () => {
  assert.throws(() => decodeClientMsg(fromHex('0d')), { message: /ClientMsg: bad variant index 13/ });
  assert.throws(() => decodeServerMsg(fromHex('0a')), { message: /ServerMsg: bad variant index 10/ });
  // Atx(AtxAction 3)
  assert.throws(() => decodeClientMsg(fromHex('0c03')), { message: /AtxAction: bad variant/ });
  // HidStatus with leds = Option tag 2
  assert.throws(() => decodeServerMsg(fromHex('06000000' + '02')), { message: /bad option tag 2/ });
  // RequestKeyframe { reason: 2 }
  assert.throws(() => decodeClientMsg(fromHex('0202')), { message: /KeyframeReason: bad variant/ });
  // SetStreamSettings with resolution 3
  assert.throws(() => decodeClientMsg(fromHex('04033cc03eac025f')), { message: /Resolution: bad variant/ });
});

test('varints are bounded like postcard bounds them', () => {
  // A u16 varint has at most 3 bytes and the third carries bits 14-15 only: ff ff 03 is 65535,
  // ff ff 04 would set bit 16.
  assert.deepStrictEqual(decodeClientMsg(fromHex('00ffff0301')), { Hello: { version: 65535, visible: true } });
  assert.throws(() => decodeClientMsg(fromHex('00ffff0401')), { message: /bad varint/ });
  // More continuation bytes than a u16 can have.
  assert.throws(() => decodeClientMsg(fromHex('00ffffff0001')), { message: /bad varint/ });
  // Non-minimal encodings are accepted, as postcard accepts them.
  assert.deepStrictEqual(decodeClientMsg(fromHex('00810001')), { Hello: { version: 1, visible: true } });
});

test('a u64 beyond Number.MAX_SAFE_INTEGER is refused, not rounded', () => {
  // Ping { client_time_us: 2^53 } = 80 80 80 80 80 80 80 10
  assert.throws(() => decodeClientMsg(fromHex('018080808080808010')), { message: /above what a JS Number/ });
  assert.deepStrictEqual(decodeClientMsg(encodeClientMsg({ Ping: { client_time_us: 2 ** 53 - 1 } })), {
    Ping: { client_time_us: 2 ** 53 - 1 },
  });
});

test('a string that is not UTF-8 is refused', () => {
  // Error { code: BadMessage, message: [0xff] }
  assert.throws(() => decodeServerMsg(fromHex('050001ff')), { message: /not valid UTF-8/ });
});

test('a byte slice longer than the message is refused', () => {
  // Video with a data length of 100 and 1 byte present.
  assert.throws(() => decodeServerMsg(fromHex('010001000000006400')), { message: /truncated/ });
});

test('a client message over 64 KiB is refused', () => {
  assert.throws(() => decodeClientMsg(new Uint8Array(MAX_CLIENT_MSG + 1)), { message: /limit is 65536/ });
});

test('encoding refuses values the Rust types cannot hold', () => {
  const settings = { resolution: 'P720', fps: 30, h264_bitrate_kbps: 2000, gop: 60, jpeg_quality: 80 };
  assert.throws(() => encodeClientMsg({ Hello: { version: 70000, visible: true } }), /u16/);
  assert.throws(() => encodeClientMsg({ Hello: { version: 1, visible: 1 } }), /bool/);
  assert.throws(() => encodeClientMsg({ Hello: { version: 1 } }), /missing field visible/);
  assert.throws(() => encodeClientMsg({ Hello: { version: 1, visible: true, extra: 1 } }), /unknown field extra/);
  assert.throws(() => encodeClientMsg({ Bye: {} }), /unknown variant Bye/);
  assert.throws(() => encodeClientMsg('Hello'), /wrong shape/);
  assert.throws(() => encodeClientMsg({ SetStreamSettings: { ...settings, fps: 256 } }), /u8/);
  assert.throws(() => encodeClientMsg({ SetStreamSettings: { ...settings, fps: 2.5 } }), /u8/);
  assert.throws(() => encodeClientMsg({ SetStreamSettings: { ...settings, resolution: 'P480' } }), /unknown variant/);
  assert.throws(() => encodeClientMsg({ RequestKeyframe: { reason: { Gap: 1 } } }), /wrong shape/);
  assert.throws(
    () => encodeServerMsg({ Video: { header: {}, data: [1, 2] } }),
    /VideoHeader: missing field/,
  );
});
