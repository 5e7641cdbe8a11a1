/** The control plane's version, shown in the OpenAPI document; keep in step with control-plane/package.json. */
export const CONTROL_PLANE_VERSION = '0.1.0';
