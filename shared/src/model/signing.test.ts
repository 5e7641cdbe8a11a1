import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isOutpostError, type ErrorCode } from '../errors.js';
import type { ModelManifest } from './manifest.js';
import {
  canonicalJson,
  generateSigningKey,
  parsePublicKey,
  publicKeyFromPem,
  sha256Hex,
  signManifest,
  verifyModelArtifact,
  verifySignedManifest,
} from './signing.js';

const ARTIFACT = new Uint8Array([8, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
const NOW_MS = Date.parse('2026-06-01T00:00:00Z');

function makeManifest(): ModelManifest {
  return {
    name: 'anomaly-pca',
    version: '1.0.0',
    description: 'test model',
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2027-01-01T00:00:00.000Z',
    artifact: { sha256: sha256Hex(ARTIFACT), sizeBytes: ARTIFACT.byteLength },
    opset: 17,
    input: { name: 'features', dims: [-1, 2] },
    output: { name: 'score', dims: [-1] },
    featureSpec: {
      metrics: ['temperature'],
      features: ['mean', 'std'],
      windowSize: 16,
      hopSize: 4,
      normalisation: { center: [60, 0.5], scale: [2, 0.25] },
    },
    threshold: 1.5,
    testVectors: [{ input: [0.1, -0.2], expectedScore: 0.0125 }],
    testTolerance: 1e-4,
  };
}

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (err) {
    if (isOutpostError(err)) return err.code;
    throw err;
  }
  return undefined;
}

const key = generateSigningKey('dev-1');

describe('canonicalJson', () => {
  it('sorts keys at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}');
  });

  it('is stable under key order', () => {
    const manifest = makeManifest();
    const shuffled: Record<string, unknown> = {};
    for (const k of Object.keys(manifest).reverse()) shuffled[k] = (manifest as unknown as Record<string, unknown>)[k];
    expect(Object.keys(shuffled)[0]).not.toBe(Object.keys(manifest)[0]);
    expect(canonicalJson(shuffled)).toBe(canonicalJson(manifest));
    expect(canonicalJson(JSON.parse(canonicalJson(manifest)))).toBe(canonicalJson(manifest));
  });

  it('refuses NaN, Infinity, undefined in arrays, bigint and non-plain objects, naming the path', () => {
    expect(() => canonicalJson({ a: { b: [1, Number.NaN] } })).toThrow(/a\.b\.1: NaN/);
    expect(() => canonicalJson({ x: Infinity })).toThrow(/x: Infinity/);
    expect(() => canonicalJson([undefined])).toThrow(/undefined/);
    expect(() => canonicalJson({ n: 1n })).toThrow(/bigint/);
    expect(() => canonicalJson({ d: new Date(0) })).toThrow(/plain objects/);
    expect(codeOf(() => canonicalJson(Number.NaN))).toBe('MODEL_INVALID');
    // Undefined object values are left out, like JSON.stringify does.
    expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
  });

  it('escapes strings as JSON does', () => {
    expect(canonicalJson({ 'k"\n': 'é\u0000' })).toBe(JSON.stringify({ 'k"\n': 'é\u0000' }));
  });
});

describe('signManifest and verifySignedManifest', () => {
  it('round-trips, also after a JSON round trip and with reordered keys', () => {
    const signed = signManifest(makeManifest(), key.privateKeyPem, key.keyId);
    expect(signed.signature).toMatchObject({ algorithm: 'ed25519', keyId: 'dev-1' });
    expect(verifySignedManifest(signed, [key.trustedKey], NOW_MS)).toEqual(makeManifest());
    const viaFile = JSON.parse(JSON.stringify(signed, null, 2)) as unknown;
    expect(verifySignedManifest(viaFile, [key.trustedKey], NOW_MS).name).toBe('anomaly-pca');
    const reordered = { signature: signed.signature, manifest: Object.fromEntries(Object.entries(signed.manifest).reverse()) };
    expect(verifySignedManifest(reordered, [key.trustedKey], NOW_MS).version).toBe('1.0.0');
  });

  it('refuses a tampered value in any field', () => {
    const signed = signManifest(makeManifest(), key.privateKeyPem, key.keyId);
    const tamperings: [string, (m: Record<string, unknown> & ModelManifest) => void][] = [
      ['name', (m) => (m.name = 'anomaly-pcb')],
      ['version', (m) => (m.version = '1.0.1')],
      ['description', (m) => (m.description = 'other')],
      ['createdAt', (m) => (m.createdAt = '2026-01-02T00:00:00.000Z')],
      ['expiresAt', (m) => (m.expiresAt = '2099-01-01T00:00:00.000Z')],
      ['artifact.sha256', (m) => (m.artifact.sha256 = 'f'.repeat(64))],
      ['artifact.sizeBytes', (m) => (m.artifact.sizeBytes += 1)],
      ['opset', (m) => (m.opset = 18)],
      ['input', (m) => (m.input.name = 'x')],
      ['output', (m) => (m.output.dims = [-1, 1])],
      ['featureSpec.windowSize', (m) => (m.featureSpec.windowSize = 32)],
      ['featureSpec.metrics', (m) => (m.featureSpec.metrics = ['pressure'])],
      ['featureSpec.normalisation', (m) => (m.featureSpec.normalisation.scale[0] = 2.5)],
      ['threshold', (m) => (m.threshold = 1e9)],
      ['testVectors', (m) => (m.testVectors[0]!.expectedScore = 0.0126)],
      ['testTolerance', (m) => (m.testTolerance = 0.5)],
      ['added field', (m) => (m.extra = 'x')],
      ['removed description', (m) => delete m.description],
    ];
    for (const [what, tamper] of tamperings) {
      const copy = structuredClone(signed);
      tamper(copy.manifest as Record<string, unknown> & ModelManifest);
      expect(codeOf(() => verifySignedManifest(copy, [key.trustedKey], NOW_MS)), what).toBe('MODEL_SIGNATURE_INVALID');
    }
    const badSignature = structuredClone(signed);
    const bytes = Buffer.from(badSignature.signature.value, 'base64');
    bytes[0] = bytes[0]! ^ 1;
    badSignature.signature.value = bytes.toString('base64');
    expect(codeOf(() => verifySignedManifest(badSignature, [key.trustedKey], NOW_MS))).toBe('MODEL_SIGNATURE_INVALID');
  });

  it('refuses a manifest signed with another key under a trusted key id', () => {
    const other = generateSigningKey('dev-1');
    const signed = signManifest(makeManifest(), other.privateKeyPem, 'dev-1');
    expect(codeOf(() => verifySignedManifest(signed, [key.trustedKey], NOW_MS))).toBe('MODEL_SIGNATURE_INVALID');
  });

  it('refuses an unknown key id, and accepts the right one among several', () => {
    const signed = signManifest(makeManifest(), key.privateKeyPem, 'dev-2');
    expect(codeOf(() => verifySignedManifest(signed, [key.trustedKey], NOW_MS))).toBe('MODEL_KEY_UNTRUSTED');
    expect(codeOf(() => verifySignedManifest(signed, [], NOW_MS))).toBe('MODEL_KEY_UNTRUSTED');
    const trusted = [generateSigningKey('other').trustedKey, { keyId: 'dev-2', publicKey: key.publicKeyPem }];
    expect(verifySignedManifest(signed, trusted, NOW_MS).name).toBe('anomaly-pca');
  });

  it('refuses an expired manifest, accepts one at its expiry instant', () => {
    const signed = signManifest(makeManifest(), key.privateKeyPem, key.keyId);
    const expiresMs = Date.parse(signed.manifest.expiresAt);
    expect(verifySignedManifest(signed, [key.trustedKey], expiresMs).name).toBe('anomaly-pca');
    expect(codeOf(() => verifySignedManifest(signed, [key.trustedKey], expiresMs + 1))).toBe('MODEL_EXPIRED');
    // A clock value that is not a number refuses rather than accepting forever.
    expect(codeOf(() => verifySignedManifest(signed, [key.trustedKey], Number.NaN))).toBe('MODEL_EXPIRED');
  });

  it('refuses a bad shape or a missing signature with the path of the problem', () => {
    const signed = signManifest(makeManifest(), key.privateKeyPem, key.keyId);
    const cases: [unknown, RegExp][] = [
      [{ manifest: signed.manifest }, /signature: /],
      [{ ...signed, signature: { ...signed.signature, value: 'abc' } }, /signature\.value: /],
      [{ ...signed, manifest: { ...signed.manifest, threshold: 'high' } }, /manifest\.threshold: /],
      [{ ...signed, manifest: { ...signed.manifest, testVectors: [{ input: [1], expectedScore: 0 }] } }, /manifest\.testVectors\.0\.input: must hold 2 values/],
      // The declared tensor contract must be the feature spec's: [batch, 2] in, one score per row out.
      [{ ...signed, manifest: { ...signed.manifest, input: { name: 'features', dims: [-1, 3] } } }, /manifest\.input\.dims: must be \[batch, 2\]/],
      [{ ...signed, manifest: { ...signed.manifest, input: { name: 'features', dims: [-1, 2, 1] } } }, /manifest\.input\.dims: /],
      [{ ...signed, manifest: { ...signed.manifest, output: { name: 'score', dims: [-1, 2] } } }, /manifest\.output\.dims: must be \[batch\]/],
      [{ ...signed, manifest: { ...signed.manifest, input: { name: 'features', dims: [4, 2] }, output: { name: 'score', dims: [3] } } }, /manifest\.output\.dims: /],
      [null, /\(root\): /],
      ['text', /\(root\): /],
    ];
    for (const [input, message] of cases) {
      let caught: unknown;
      try {
        verifySignedManifest(input, [key.trustedKey], NOW_MS);
      } catch (err) {
        caught = err;
      }
      expect(isOutpostError(caught, 'MODEL_INVALID'), String(message)).toBe(true);
      expect((caught as Error).message).toMatch(message);
    }
  });

  it('accepts a trusted key as base64 of the 32 raw bytes', () => {
    const signed = signManifest(makeManifest(), key.privateKeyPem, key.keyId);
    const jwk = createPublicKey(key.publicKeyPem).export({ format: 'jwk' });
    const raw = Buffer.from(jwk.x!, 'base64url').toString('base64');
    expect(raw).toHaveLength(44);
    expect(verifySignedManifest(signed, [{ keyId: 'dev-1', publicKey: raw }], NOW_MS).name).toBe('anomaly-pca');
  });

  it('refuses a non-ed25519 or unparsable key with MODEL_KEY_INVALID', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const rsaPrivatePem = rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const rsaPublicPem = rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    expect(codeOf(() => signManifest(makeManifest(), rsaPrivatePem, 'k'))).toBe('MODEL_KEY_INVALID');
    expect(codeOf(() => signManifest(makeManifest(), 'not a key', 'k'))).toBe('MODEL_KEY_INVALID');
    expect(codeOf(() => parsePublicKey(rsaPublicPem))).toBe('MODEL_KEY_INVALID');
    const signed = signManifest(makeManifest(), key.privateKeyPem, key.keyId);
    expect(codeOf(() => verifySignedManifest(signed, [{ keyId: 'dev-1', publicKey: 'x'.repeat(60) }], NOW_MS))).toBe('MODEL_KEY_INVALID');
  });

  it('refuses a private key given as a trusted key, though it is the right key pair', () => {
    const signed = signManifest(makeManifest(), key.privateKeyPem, key.keyId);
    expect(codeOf(() => parsePublicKey(key.privateKeyPem))).toBe('MODEL_KEY_INVALID');
    expect(codeOf(() => verifySignedManifest(signed, [{ keyId: 'dev-1', publicKey: key.privateKeyPem }], NOW_MS))).toBe('MODEL_KEY_INVALID');
  });

  it('accepts shapes with a fixed batch or a trailing 1 on the score', () => {
    for (const [input, output] of [
      [[-1, 2], [-1, 1]],
      [[8, 2], [8]],
      [[8, 2], [-1]],
    ] as const) {
      const manifest = { ...makeManifest(), input: { name: 'features', dims: [...input] }, output: { name: 'score', dims: [...output] } };
      const signed = signManifest(manifest, key.privateKeyPem, key.keyId);
      expect(verifySignedManifest(signed, [key.trustedKey], NOW_MS).input.dims).toEqual(input);
    }
  });

  it('refuses to sign an invalid manifest or with a key id a verifier cannot match', () => {
    expect(codeOf(() => signManifest({ ...makeManifest(), threshold: Number.NaN }, key.privateKeyPem, key.keyId))).toBe('MODEL_INVALID');
    expect(codeOf(() => signManifest(makeManifest(), key.privateKeyPem, 'bad key id'))).toBe('MODEL_INVALID');
  });
});

describe('publicKeyFromPem', () => {
  it('derives the SPKI PEM from the private key, and passes a public PEM through', () => {
    expect(publicKeyFromPem(key.privateKeyPem)).toBe(key.publicKeyPem);
    expect(publicKeyFromPem(key.publicKeyPem)).toBe(key.publicKeyPem);
    expect(codeOf(() => publicKeyFromPem('-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----'))).toBe('MODEL_KEY_INVALID');
  });
});

describe('verifyModelArtifact', () => {
  it('accepts the right bytes and refuses a changed byte or a different size', () => {
    const manifest = makeManifest();
    expect(() => verifyModelArtifact(ARTIFACT, manifest)).not.toThrow();
    const changed = ARTIFACT.slice();
    changed[3] = changed[3]! ^ 0xff;
    expect(codeOf(() => verifyModelArtifact(changed, manifest))).toBe('MODEL_DIGEST_MISMATCH');
    expect(codeOf(() => verifyModelArtifact(ARTIFACT.subarray(1), manifest))).toBe('MODEL_DIGEST_MISMATCH');
    expect(codeOf(() => verifyModelArtifact(new Uint8Array([...ARTIFACT, 0]), manifest))).toBe('MODEL_DIGEST_MISMATCH');
  });
});
