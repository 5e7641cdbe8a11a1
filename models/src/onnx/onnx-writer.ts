// The only file in models/ that imports onnx-proto (lint enforces it): it turns a small graph
// description we own into ONNX protobuf bytes, and reads back the few facts tests check.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/**
 * ONNX IR version written. onnx-proto carries the ONNX 1.10 schema (IR 8), and opset 17 needs
 * IR >= 8; onnxruntime-node 1.30 reads it.
 */
export const ONNX_IR_VERSION = 8;

/** A dimension: a fixed size, or a named dynamic one (e.g. the batch `N`). */
export type OnnxDim = number | string;

/** A float32 tensor a graph takes or returns. */
export interface OnnxValueInfo {
  name: string;
  dims: readonly OnnxDim[];
}

/** Where an initializer's bytes are when they are not inside the model (ONNX external data). */
export interface OnnxExternalData {
  /** File name relative to the model file, as ONNX writes it. */
  location: string;
  offsetBytes: number;
  lengthBytes: number;
}

/** A constant float32 tensor of the graph: its values inline, or a reference to a file. */
export interface OnnxInitializer {
  name: string;
  dims: readonly number[];
  /** Row-major values; ignored when `external` is set. */
  values?: Float32Array;
  external?: OnnxExternalData;
}

export type OnnxAttribute =
  | { name: string; type: 'int'; value: number }
  | { name: string; type: 'ints'; values: readonly number[] }
  | { name: string; type: 'float'; value: number };

export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  attributes?: readonly OnnxAttribute[];
}

/** A whole model in the default ONNX domain, float32 throughout. */
export interface OnnxGraph {
  name: string;
  opset: number;
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  initializers: readonly OnnxInitializer[];
  nodes: readonly OnnxNode[];
  docString?: string;
  /** Model metadata (`metadata_props`), written in key order so the bytes are reproducible. */
  metadata?: Readonly<Record<string, string>>;
}

const PRODUCER_NAME = 'outpost-models';

function float32LittleEndian(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return bytes;
}

function encodeValueInfo(info: OnnxValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: info.name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: info.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function encodeInitializer(init: OnnxInitializer): onnxProto.onnx.ITensorProto {
  const base = { name: init.name, dims: [...init.dims], dataType: onnx.TensorProto.DataType.FLOAT };
  if (init.external !== undefined) {
    return {
      ...base,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: init.external.location },
        { key: 'offset', value: String(init.external.offsetBytes) },
        { key: 'length', value: String(init.external.lengthBytes) },
      ],
    };
  }
  const expected = init.dims.reduce((a, b) => a * b, 1);
  if (init.values === undefined || init.values.length !== expected) {
    throw new RangeError(`initializer ${init.name}: dims ${JSON.stringify(init.dims)} need ${expected} values, got ${init.values?.length ?? 'none'}`);
  }
  return { ...base, rawData: float32LittleEndian(init.values) };
}

function encodeAttribute(attr: OnnxAttribute): onnxProto.onnx.IAttributeProto {
  const { AttributeType } = onnx.AttributeProto;
  switch (attr.type) {
    case 'int':
      return { name: attr.name, type: AttributeType.INT, i: attr.value };
    case 'ints':
      return { name: attr.name, type: AttributeType.INTS, ints: [...attr.values] };
    case 'float':
      return { name: attr.name, type: AttributeType.FLOAT, f: attr.value };
  }
}

/** Encodes a graph as ONNX model bytes. Same graph in, same bytes out. */
export function encodeOnnxModel(graph: OnnxGraph): Uint8Array {
  const model: onnxProto.onnx.IModelProto = {
    irVersion: ONNX_IR_VERSION,
    producerName: PRODUCER_NAME,
    opsetImport: [{ domain: '', version: graph.opset }],
    metadataProps: Object.keys(graph.metadata ?? {})
      .sort()
      .map((key) => ({ key, value: graph.metadata![key]! })),
    graph: {
      name: graph.name,
      docString: graph.docString ?? '',
      input: graph.inputs.map(encodeValueInfo),
      output: graph.outputs.map(encodeValueInfo),
      initializer: graph.initializers.map(encodeInitializer),
      node: graph.nodes.map((node, i) => ({
        name: node.name ?? `${node.opType.toLowerCase()}_${i}`,
        opType: node.opType,
        domain: '',
        input: [...node.inputs],
        output: [...node.outputs],
        attribute: (node.attributes ?? []).map(encodeAttribute),
      })),
    },
  };
  const error = onnx.ModelProto.verify(model);
  if (error !== null) throw new RangeError(`ONNX model does not encode: ${error}`);
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/** What tests read back from model bytes. */
export interface OnnxModelSummary {
  irVersion: number;
  opset: number | undefined;
  inputs: string[];
  outputs: string[];
  opTypes: string[];
  initializers: { name: string; dims: number[]; external: boolean }[];
  metadata: Record<string, string>;
}

/** Decodes model bytes far enough to inspect them (throws on bytes that are not a model). */
export function readOnnxModelSummary(bytes: Uint8Array): OnnxModelSummary {
  const model = onnx.ModelProto.decode(bytes);
  // Decoded messages hold every repeated field as an array; the generated interface says optional.
  const graph = onnx.GraphProto.create(model.graph ?? {});
  const defaultOpset = model.opsetImport.find((o) => (o.domain ?? '') === '');
  return {
    irVersion: Number(model.irVersion),
    opset: defaultOpset === undefined ? undefined : Number(defaultOpset.version),
    inputs: graph.input.map((i) => i.name ?? ''),
    outputs: graph.output.map((o) => o.name ?? ''),
    opTypes: graph.node.map((n) => n.opType ?? ''),
    initializers: graph.initializer.map((t) => ({
      name: t.name ?? '',
      dims: (t.dims ?? []).map(Number),
      external: t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (t.externalData ?? []).length > 0,
    })),
    metadata: Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value])),
  };
}
