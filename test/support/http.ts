/** Typed readers for response bodies in tests (fetch's json() is `unknown`). */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

// biome-ignore lint/suspicious/noExplicitAny: test bodies are asserted field by field
export type Json = any;

export const json = (response: Response): Promise<Json> => response.json();

export const errorOf = async (response: Response): Promise<ErrorBody["error"]> =>
  ((await response.json()) as ErrorBody).error;
