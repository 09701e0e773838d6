// The Python interpreter for cross-runtime and interop tests: the one test/run.ts made ready (TKG_TEST_PYTHON: python3
// from PATH with the packages of test/setup/python-requirements.txt, or the .tkg/python virtual environment).
export function testPython(): string {
  return process.env.TKG_TEST_PYTHON ?? 'python3';
}
