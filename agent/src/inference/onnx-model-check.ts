// The only agent file that imports onnx-proto: the agent process inspects a model's protobuf
// here, before any byte of it reaches an inference process.
import onnxProto from 'onnx-proto';
import { ErrorCode, OutpostError } from '@outpost/shared';

const { onnx } = onnxProto;
type Graph = onnxProto.onnx.IGraphProto;
type Tensor = onnxProto.onnx.ITensorProto;
type SparseTensor = onnxProto.onnx.ISparseTensorProto;
type Attribute = onnxProto.onnx.IAttributeProto;
type Node = onnxProto.onnx.INodeProto;

/**
 * Newest ONNX IR version whose every tensor-holding field onnx-proto 8.0.1 (ONNX 1.10) knows.
 * protobufjs skips fields it does not know, so a newer model could hold a tensor where this
 * check cannot see it (IR 9 added attribute defaults to functions): such a model is refused
 * rather than half inspected.
 */
export const MAX_INSPECTABLE_IR_VERSION = 8;
/** Tensor names listed in an error at most. */
const MAX_LISTED_TENSORS = 10;

/**
 * Refuses an ONNX model that is not a parsable ModelProto, is newer than this check can read,
 * or references external data: any TensorProto with `data_location: EXTERNAL` or
 * `external_data` entries, anywhere (initializers, sparse initializers, node attributes,
 * subgraphs, functions, training info). onnxruntime would read such data from files next to
 * the model, bytes nobody signed.
 *
 * @throws OutpostError MODEL_INVALID (not ONNX, or IR too new), MODEL_EXTERNAL_DATA
 *   (`details.tensors` names the tensors).
 */
export function assertNoExternalData(bytes: Uint8Array, modelName = 'the model'): void {
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (cause) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `${modelName} is not an ONNX model: ${(cause as Error).message}`, { cause });
  }
  const irVersion = Number(model.irVersion);
  if (model.graph === null || model.graph === undefined) throw new OutpostError(ErrorCode.MODEL_INVALID, `${modelName} has no graph`);
  if (!(irVersion >= 1 && irVersion <= MAX_INSPECTABLE_IR_VERSION)) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `${modelName} has ONNX IR version ${irVersion}; this agent inspects IR 1 to ${MAX_INSPECTABLE_IR_VERSION} only`, {
      details: { irVersion, maxIrVersion: MAX_INSPECTABLE_IR_VERSION },
    });
  }
  const external: string[] = [];
  const visitTensor = (tensor: Tensor | null | undefined, where: string): void => {
    if (tensor === null || tensor === undefined) return;
    if (tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (tensor.externalData?.length ?? 0) > 0) {
      external.push(`${where}:${tensor.name || '(unnamed)'}`);
    }
  };
  const visitSparse = (sparse: SparseTensor | null | undefined, where: string): void => {
    visitTensor(sparse?.values, where);
    visitTensor(sparse?.indices, where);
  };
  const visitNodes = (nodes: readonly Node[] | null | undefined, where: string): void => {
    for (const node of nodes ?? []) for (const attribute of node.attribute ?? []) visitAttribute(attribute, `${where}/${node.name || node.opType}`);
  };
  const visitAttribute = (attribute: Attribute, where: string): void => {
    visitTensor(attribute.t, where);
    for (const t of attribute.tensors ?? []) visitTensor(t, where);
    visitSparse(attribute.sparseTensor, where);
    for (const s of attribute.sparseTensors ?? []) visitSparse(s, where);
    if (attribute.g) visitGraph(attribute.g, where);
    for (const g of attribute.graphs ?? []) visitGraph(g, where);
  };
  const visitGraph = (graph: Graph, where: string): void => {
    const here = `${where}/${graph.name || 'graph'}`;
    for (const t of graph.initializer ?? []) visitTensor(t, here);
    for (const s of graph.sparseInitializer ?? []) visitSparse(s, here);
    visitNodes(graph.node, here);
  };
  visitGraph(model.graph, '');
  for (const fn of model.functions ?? []) visitNodes(fn.node, `/function:${fn.name}`);
  for (const info of model.trainingInfo ?? []) {
    if (info.initialization) visitGraph(info.initialization, '/training');
    if (info.algorithm) visitGraph(info.algorithm, '/training');
  }
  if (external.length > 0) {
    throw new OutpostError(
      ErrorCode.MODEL_EXTERNAL_DATA,
      `${modelName} references external data (${external.length} tensor${external.length === 1 ? '' : 's'}: ${external.slice(0, MAX_LISTED_TENSORS).join(', ')}); only self-contained models are loaded`,
      { details: { tensors: external.slice(0, MAX_LISTED_TENSORS), count: external.length } },
    );
  }
}
