#!/usr/bin/env node
/**
 * The Node.js runtime client of nubis: it runs inside a Lambda sandbox and speaks the AWS Lambda
 * Runtime API, as AWS's own Node.js runtime (aws-lambda-nodejs-runtime-interface-client) does, with
 * Node's standard modules only.
 *
 * Run as `node /var/runtime/node/bootstrap.js` with the working directory /var/task. It reads
 * AWS_LAMBDA_RUNTIME_API (host:port), _HANDLER ("file.export", the file possibly under a directory:
 * "src/index.handler"; the export possibly nested: "index.a.handler") and LAMBDA_TASK_ROOT, loads
 * the handler (CommonJS through require, ES modules through import()), and then loops:
 * GET /runtime/invocation/next, call the handler, POST /runtime/invocation/{id}/response or
 * /runtime/invocation/{id}/error. A failure to load the handler is posted to /runtime/init/error and
 * ends the process with status 129.
 *
 * What the function sees follows AWS's runtime: async handlers (their promise settles the invocation),
 * callback handlers (callback(err, result); with context.callbackWaitsForEmptyEventLoop the result
 * is sent once the event loop is empty), a synchronous handler that never calls back answers null
 * once the event loop is empty; the context object; errors as {errorType, errorMessage, trace} with
 * Runtime.* types; console lines "<ISO time>\t<request id>\t<LEVEL>\t<message>" on stdout.
 */

'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const util = require('util');

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';

// ---------------------------------------------------------------------------------------------
// Errors, as the runtime's Errors.js.

function _isError(obj) {
  return (
    obj &&
    obj.name &&
    obj.message &&
    obj.stack &&
    typeof obj.name === 'string' &&
    typeof obj.message === 'string' &&
    typeof obj.stack === 'string'
  );
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || _isError(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: error.stack.split('\n'),
      };
    }
    return {
      errorType: typeof error,
      errorMessage: error.toString(),
      trace: [],
    };
  } catch (_err) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function _withEnumerableProperties(error) {
  if (error instanceof Error) {
    const ret = Object.assign({ errorType: error.name, errorMessage: error.message, code: error.code }, error);
    if (typeof error.stack == 'string') {
      ret.stack = error.stack.split('\n');
    }
    return ret;
  }
  return error;
}

// toFormatted renders an error for the log; the string starts with a tab, as AWS's.
function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, (_k, v) => _withEnumerableProperties(v));
  } catch (_err) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

class ImportModuleError extends Error {}
class HandlerNotFound extends Error {}
class MalformedHandlerName extends Error {}
class UserCodeSyntaxError extends Error {}
class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
for (const e of [ImportModuleError, HandlerNotFound, MalformedHandlerName, UserCodeSyntaxError, UnhandledPromiseRejection]) {
  e.prototype.name = `Runtime.${e.name}`;
}

// ---------------------------------------------------------------------------------------------
// Logging, as the runtime's LogPatch.js writing to stdout: one line a record.

const REQUEST_ID_SYMBOL = Symbol.for('aws.lambda.runtime.requestId');

function logToStdout(level, message, ...params) {
  const line = `${new Date().toISOString()}\t${global[REQUEST_ID_SYMBOL]}\t${level.name}\t${util.format(message, ...params)}`;
  process.stdout.write(line.replace(/\n/g, '\r') + '\n');
}

function patchConsole() {
  const levels = Object.freeze({
    TRACE: { name: 'TRACE', priority: 1 },
    DEBUG: { name: 'DEBUG', priority: 2 },
    INFO: { name: 'INFO', priority: 3 },
    WARN: { name: 'WARN', priority: 4 },
    ERROR: { name: 'ERROR', priority: 5 },
    FATAL: { name: 'FATAL', priority: 6 },
  });
  const min = levels[(process.env['AWS_LAMBDA_LOG_LEVEL'] || '').toUpperCase()] || levels.TRACE;
  const nop = () => {};
  const at = (level) => (level.priority >= min.priority ? (msg, ...params) => logToStdout(level, msg, ...params) : nop);
  console.trace = at(levels.TRACE);
  console.debug = at(levels.DEBUG);
  console.info = at(levels.INFO);
  console.log = console.info;
  console.warn = at(levels.WARN);
  console.error = at(levels.ERROR);
  console.fatal = (msg, ...params) => logToStdout(levels.FATAL, msg, ...params);
}

function logError(msg, err) {
  console.error(msg, toFormatted(intoError(err)));
}

// ---------------------------------------------------------------------------------------------
// The Runtime API client: HTTP/1.1 over kept-alive connections, written on net rather than http:
// the Runtime API is a handful of requests to one known server, and with Node's http client a warm
// invocation took about 0.4 ms more than a bare Go client against the same server, with this about
// 0.25 ms. An idle connection is unref'd, so that it does not hold the event loop open: an empty
// event loop still means the function is done.

class RuntimeAPIConnection {
  constructor(hostname, port) {
    this.closed = false;
    this.pending = null; // {resolve, reject, response parsing state}
    this.socket = net.connect({ host: hostname, port: port, noDelay: true });
    this.socket.setNoDelay(true);
    this.socket.on('data', (d) => this._onData(d));
    this.socket.on('error', (e) => this._fail(e));
    this.socket.on('close', () => this._fail(null));
    this.socket.on('end', () => this._fail(null));
  }

  request(head, body) {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject, got: false, head: null, status: 0, headers: null, mode: '', need: 0, chunks: [], size: 0, line: '' };
      this.socket.ref();
      if (body !== undefined && body.length > 0 && body.length < 16384) {
        this.socket.write(Buffer.concat([Buffer.from(head, 'utf8'), body]));
      } else {
        this.socket.write(head);
        if (body !== undefined && body.length > 0) this.socket.write(body);
      }
    });
  }

  idle() {
    this.socket.unref();
  }

  destroy() {
    this.closed = true;
    this.socket.destroy();
  }

  _fail(err) {
    this.closed = true;
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    if (p.mode === 'eof') {
      return this._done(p);
    }
    const e = err || new Error('the Runtime API closed the connection');
    e.nothingRead = !p.got;
    p.reject(e);
  }

  _onData(data) {
    const p = this.pending;
    if (!p) return; // nothing is expected on an idle connection
    p.got = true;
    let off = 0;
    if (p.head === null) {
      p.chunks.push(data);
      p.size += data.length;
      const all = p.chunks.length === 1 ? data : Buffer.concat(p.chunks, p.size);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        if (p.size > 1 << 20) this._error(new Error('Runtime API response head too large'));
        p.chunks = [all];
        return;
      }
      p.head = all.toString('latin1', 0, end);
      data = all;
      off = end + 4;
      p.chunks = [];
      p.size = 0;
      if (!this._parseHead(p)) return;
    }
    this._onBody(p, data, off);
  }

  _parseHead(p) {
    const lines = p.head.split('\r\n');
    const m = /^HTTP\/1\.(\d) (\d{3})/.exec(lines[0]);
    if (!m) {
      this._error(new Error('malformed Runtime API response: ' + JSON.stringify(lines[0].slice(0, 200))));
      return false;
    }
    p.status = parseInt(m[2], 10);
    p.headers = {};
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i].indexOf(':');
      if (c > 0) {
        p.headers[lines[i].slice(0, c).trim().toLowerCase()] = Buffer.from(lines[i].slice(c + 1).trim(), 'latin1').toString('utf8');
      }
    }
    p.close = m[1] === '0' || /close/i.test(p.headers['connection'] || '');
    if (/chunked/i.test(p.headers['transfer-encoding'] || '')) {
      p.mode = 'chunk-size';
    } else if (p.headers['content-length'] !== undefined) {
      p.mode = 'length';
      p.need = parseInt(p.headers['content-length'], 10);
    } else if (p.status === 204 || p.status === 304 || p.status < 200) {
      p.mode = 'length';
      p.need = 0;
    } else {
      p.mode = 'eof';
      p.close = true;
    }
    return true;
  }

  _onBody(p, data, off) {
    while (this.pending === p) {
      switch (p.mode) {
        case 'length': {
          const take = Math.min(p.need - p.size, data.length - off);
          if (take > 0) {
            p.chunks.push(data.subarray(off, off + take));
            p.size += take;
            off += take;
          }
          if (p.size >= p.need) return this._finish(p);
          return;
        }
        case 'eof':
          if (off < data.length) {
            p.chunks.push(data.subarray(off));
            p.size += data.length - off;
          }
          return;
        case 'chunk-size':
        case 'chunk-end':
        case 'trailer': {
          const nl = data.indexOf(10, off);
          if (nl < 0) {
            p.line += data.toString('latin1', off);
            return;
          }
          const line = (p.line + data.toString('latin1', off, nl)).replace(/\r$/, '');
          p.line = '';
          off = nl + 1;
          if (p.mode === 'chunk-size') {
            const n = parseInt(line.split(';')[0], 16);
            if (isNaN(n)) return this._error(new Error('malformed chunk in Runtime API response'));
            if (n === 0) {
              p.mode = 'trailer';
            } else {
              p.mode = 'chunk';
              p.need = n;
            }
          } else if (p.mode === 'chunk-end') {
            p.mode = 'chunk-size';
          } else if (line === '') {
            return this._finish(p);
          }
          break;
        }
        case 'chunk': {
          const take = Math.min(p.need, data.length - off);
          if (take > 0) {
            p.chunks.push(data.subarray(off, off + take));
            p.size += take;
            p.need -= take;
            off += take;
          }
          if (p.need > 0) return;
          p.mode = 'chunk-end';
          break;
        }
      }
    }
  }

  _error(err) {
    const p = this.pending;
    this.pending = null;
    this.destroy();
    if (p) p.reject(err);
  }

  _finish(p) {
    this.pending = null;
    if (p.close) this.destroy();
    this._done(p);
  }

  _done(p) {
    p.resolve({ status: p.status, headers: p.headers, body: Buffer.concat(p.chunks, p.size) });
  }
}

class RuntimeClient {
  constructor(hostPort) {
    const i = hostPort.lastIndexOf(':');
    this.hostname = (i < 0 ? hostPort : hostPort.slice(0, i)).replace(/^\[|\]$/g, '');
    this.port = i < 0 ? 80 : parseInt(hostPort.slice(i + 1), 10);
    this.hostHeader = hostPort;
    this.idle = null; // the kept-alive connection
  }

  // _request resolves to {status, headers (lower-case names), body (a Buffer)}. Requests may overlap
  // (an error posted while the next invocation is awaited); each takes the idle connection or a new
  // one. A request on a reused connection that the server closed meanwhile fails before any
  // answer; it is sent once more on a new connection.
  async _request(method, p, body, headers) {
    let head = `${method} ${p} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n`;
    if (headers) {
      for (const name in headers) head += `${name}: ${String(headers[name]).replace(/[\r\n]/g, ' ')}\r\n`;
    }
    if (body !== undefined) head += `Content-Length: ${body.length}\r\n`;
    head += '\r\n';
    for (let attempt = 0; ; attempt++) {
      let conn = this.idle;
      this.idle = null;
      const reused = conn !== null && !conn.closed;
      if (!reused) conn = new RuntimeAPIConnection(this.hostname, this.port);
      let res;
      try {
        res = await conn.request(head, body);
      } catch (err) {
        conn.destroy();
        if (reused && err.nothingRead && attempt === 0) continue;
        throw err;
      }
      if (!conn.closed) {
        if (this.idle) this.idle.destroy();
        conn.idle();
        this.idle = conn;
      }
      return res;
    }
  }

  async nextInvocation() {
    const res = await this._request('GET', API_PREFIX + '/invocation/next');
    if (res.status !== 200) {
      throw new Error(`GET /runtime/invocation/next: ${res.status} ${res.body.toString('utf8', 0, 512)}`);
    }
    return { bodyJson: res.body.toString('utf8'), headers: res.headers };
  }

  _post(p, bodyString, extraHeaders, callback) {
    const headers = Object.assign({ 'Content-Type': 'application/json' }, extraHeaders || {});
    this._request('POST', p, Buffer.from(bodyString, 'utf8'), headers).then(
      (res) => {
        if (res.status !== 202) {
          // The platform judges the outcome (a response too large, say); the invocation is over
          // either way.
          process.stderr.write(`nubis runtime: POST ${p}: ${res.status} ${res.body.toString('utf8', 0, 512)}\n`);
        }
        if (callback) callback();
      },
      (err) => {
        process.stderr.write(`nubis runtime: POST ${p}: ${err}\n`);
        process.exit(1);
      },
    );
  }

  postInvocationResponse(response, id, callback) {
    const bodyString = _trySerializeResponse(response);
    this._post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/response`, bodyString, null, callback);
  }

  postInvocationError(error, id, callback) {
    const response = toRapidResponse(error);
    const bodyString = _trySerializeResponse(response);
    this._post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/error`, bodyString, { [ERROR_TYPE_HEADER]: response.errorType }, callback);
  }

  postInitError(error, callback) {
    const response = toRapidResponse(error);
    this._post(`${API_PREFIX}/init/error`, _trySerializeResponse(response), { [ERROR_TYPE_HEADER]: response.errorType }, callback);
  }
}

function _trySerializeResponse(body) {
  try {
    return JSON.stringify(body === undefined ? null : body);
  } catch (err) {
    throw new Error('Unable to stringify response body');
  }
}

// ---------------------------------------------------------------------------------------------
// Loading the handler, as the runtime's UserFunction.js.

const FUNCTION_EXPR = /^([^.]*)\.(.*)$/;
const RELATIVE_PATH_SUBSTRING = '..';

function _moduleRootAndHandler(fullHandlerString) {
  const handlerString = path.basename(fullHandlerString);
  const moduleRoot = fullHandlerString.substring(0, fullHandlerString.indexOf(handlerString));
  return [moduleRoot, handlerString];
}

function _splitHandlerString(handler) {
  const match = handler.match(FUNCTION_EXPR);
  if (!match || match.length != 3) {
    throw new MalformedHandlerName('Bad handler');
  }
  return [match[1], match[2]];
}

function _resolveHandler(object, nestedProperty) {
  return nestedProperty.split('.').reduce((nested, key) => nested && nested[key], object);
}

function _tryRequireFile(file, extension) {
  const p = file + (extension || '');
  return fs.existsSync(p) ? require(p) : undefined;
}

async function _tryAwaitImport(file, extension) {
  const p = file + (extension || '');
  return fs.existsSync(p) ? await import(p) : undefined;
}

function _hasFolderPackageJsonTypeModule(folder) {
  if (folder.endsWith('/node_modules')) {
    return false;
  }
  const pj = path.join(folder, '/package.json');
  if (fs.existsSync(pj)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(pj));
      if (pkg) {
        return pkg.type === 'module';
      }
    } catch (e) {
      console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
      return false;
    }
  }
  if (folder === '/') {
    return false;
  }
  return _hasFolderPackageJsonTypeModule(path.resolve(folder, '..'));
}

async function _tryRequire(appRoot, moduleRoot, module) {
  const lambdaStylePath = path.resolve(appRoot, moduleRoot, module);

  // Extensionless files are loaded with require.
  const extensionless = _tryRequireFile(lambdaStylePath);
  if (extensionless) {
    return extensionless;
  }

  // Unless the nearest package.json says "type": "module", .js files are CommonJS.
  const pjHasModule = _hasFolderPackageJsonTypeModule(path.resolve(path.dirname(lambdaStylePath)));
  if (!pjHasModule) {
    const loaded = _tryRequireFile(lambdaStylePath, '.js');
    if (loaded) {
      return loaded;
    }
  }

  const loaded =
    (pjHasModule && (await _tryAwaitImport(lambdaStylePath, '.js'))) ||
    (await _tryAwaitImport(lambdaStylePath, '.mjs')) ||
    _tryRequireFile(lambdaStylePath, '.cjs');
  if (loaded) {
    return loaded;
  }

  // A package in node_modules, resolved from the task root rather than from this file.
  return require(require.resolve(module, { paths: [appRoot, moduleRoot] }));
}

async function _loadUserApp(appRoot, moduleRoot, module) {
  try {
    return await _tryRequire(appRoot, moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new UserCodeSyntaxError(e);
    } else if (e.code !== undefined && e.code === 'MODULE_NOT_FOUND') {
      throw new ImportModuleError(e);
    }
    throw e;
  }
}

async function loadHandler(appRoot, fullHandlerString) {
  if (fullHandlerString.includes(RELATIVE_PATH_SUBSTRING)) {
    throw new MalformedHandlerName(
      `'${fullHandlerString}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const [moduleRoot, moduleAndHandler] = _moduleRootAndHandler(fullHandlerString);
  const [module, handlerPath] = _splitHandlerString(moduleAndHandler);

  const userApp = await _loadUserApp(appRoot, moduleRoot, module);
  const handlerFunc = _resolveHandler(userApp, handlerPath);
  if (!handlerFunc) {
    throw new HandlerNotFound(`${fullHandlerString} is undefined or not exported`);
  }
  if (typeof handlerFunc !== 'function') {
    throw new HandlerNotFound(`${fullHandlerString} is not a function`);
  }
  return handlerFunc;
}

// ---------------------------------------------------------------------------------------------
// The process's single beforeExit listener, replaced per invocation.

const BEFORE_EXIT = Symbol.for('aws.lambda.beforeExit');
const NO_OP = () => {};
const beforeExit = {
  invoke: () => global[BEFORE_EXIT](),
  reset: () => (global[BEFORE_EXIT] = NO_OP),
  set: (listener) => (global[BEFORE_EXIT] = listener),
};

// ---------------------------------------------------------------------------------------------
// The callback and the context, as the runtime's CallbackContext.js and InvokeContext.js.

function buildCallbackContext(client, id, scheduleNext) {
  const postError = (err, callback) => {
    logError('Invoke Error', err);
    client.postInvocationError(err, id, callback);
  };

  let isCompleteInvoked = false;
  const complete = (result, callback) => {
    if (isCompleteInvoked) {
      console.error('Invocation has already been reported as done. Cannot call complete more than once per invocation.');
      return;
    }
    isCompleteInvoked = true;
    client.postInvocationResponse(result, id, callback);
  };

  let waitForEmptyEventLoop = true;

  const callback = function (err, result) {
    beforeExit.reset();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else if (!waitForEmptyEventLoop) {
      complete(result, scheduleNext);
    } else {
      beforeExit.set(() => {
        setImmediate(() => complete(result, scheduleNext));
      });
    }
  };

  const done = (err, result) => {
    beforeExit.reset();
    if (err !== undefined && err !== null) {
      postError(err, scheduleNext);
    } else {
      complete(result, scheduleNext);
    }
  };
  const succeed = (result) => done(null, result);
  const fail = (err) => (err === undefined || err === null ? done('handled') : done(err, null));

  // Only the first call of any of them counts.
  let finished = false;
  const once = (fn) =>
    function () {
      if (!finished) {
        fn.apply(null, arguments);
        finished = true;
      }
    };

  const callbackContext = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: once(succeed),
    fail: once(fail),
    done: once(done),
  };
  const markCompleted = () => {
    isCompleteInvoked = true;
  };
  return [once(callback), callbackContext, markCompleted];
}

function _parseJson(jsonString, name) {
  if (jsonString === undefined) {
    return undefined;
  }
  try {
    return JSON.parse(jsonString);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as json: ${err.toString()}`);
  }
}

function attachContext(callbackContext, headers) {
  if (headers['lambda-runtime-trace-id']) {
    process.env['_X_AMZN_TRACE_ID'] = headers['lambda-runtime-trace-id'];
  } else {
    delete process.env['_X_AMZN_TRACE_ID'];
  }
  const deadline = headers['lambda-runtime-deadline-ms'];
  return Object.assign(
    callbackContext,
    {
      functionVersion: process.env['AWS_LAMBDA_FUNCTION_VERSION'],
      functionName: process.env['AWS_LAMBDA_FUNCTION_NAME'],
      memoryLimitInMB: process.env['AWS_LAMBDA_FUNCTION_MEMORY_SIZE'],
      logGroupName: process.env['AWS_LAMBDA_LOG_GROUP_NAME'],
      logStreamName: process.env['AWS_LAMBDA_LOG_STREAM_NAME'],
    },
    {
      clientContext: _parseJson(headers['lambda-runtime-client-context'], 'ClientContext'),
      identity: _parseJson(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: headers['lambda-runtime-aws-request-id'],
      getRemainingTimeInMillis: function () {
        return deadline - Date.now();
      },
    },
  );
}

// ---------------------------------------------------------------------------------------------
// The invocation loop, as the runtime's Runtime.js.

function _isPromise(obj) {
  return obj && obj.then && typeof obj.then === 'function';
}

class Runtime {
  constructor(client, handler, errorCallbacks) {
    this.client = client;
    this.handler = handler;
    this.errorCallbacks = errorCallbacks;
  }

  scheduleIteration() {
    setImmediate(() => {
      this.handleOnce().then(
        () => {},
        (err) => {
          console.log(`Unexpected Top Level Error: ${err.toString()}`);
          this.errorCallbacks.uncaughtException(err);
        },
      );
    });
  }

  async handleOnce() {
    const { bodyJson, headers } = await this.client.nextInvocation();
    const id = headers['lambda-runtime-aws-request-id'];
    if (!id) {
      throw new Error('invocation id is missing or invalid');
    }
    global[REQUEST_ID_SYMBOL] = id;

    const [callback, callbackContext, markCompleted] = buildCallbackContext(this.client, id, this.scheduleIteration.bind(this));
    try {
      this._setErrorCallbacks(id);
      // A handler that neither calls back nor returns a promise answers null once the event loop
      // is empty; calling back replaces this listener.
      beforeExit.set(() => {
        markCompleted();
        this.client.postInvocationResponse(null, id, () => this.scheduleIteration());
      });

      const result = this.handler(JSON.parse(bodyJson), attachContext(callbackContext, headers), callback);
      if (_isPromise(result)) {
        result.then(callbackContext.succeed, callbackContext.fail).catch(callbackContext.fail);
      }
    } catch (err) {
      callback(err);
    }
  }

  _setErrorCallbacks(id) {
    this.errorCallbacks.uncaughtException = (error) => {
      this.client.postInvocationError(error, id, () => process.exit(129));
    };
    this.errorCallbacks.unhandledRejection = (error) => {
      this.client.postInvocationError(error, id, () => process.exit(128));
    };
  }
}

async function main() {
  patchConsole();
  const client = new RuntimeClient(process.env.AWS_LAMBDA_RUNTIME_API || '127.0.0.1:9001');

  const errorCallbacks = {
    uncaughtException: (error) => client.postInitError(error, () => process.exit(129)),
    unhandledRejection: (error) => client.postInitError(error, () => process.exit(128)),
  };
  process.on('uncaughtException', (error) => {
    logError('Uncaught Exception', error);
    errorCallbacks.uncaughtException(error);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new UnhandledPromiseRejection(reason, promise);
    logError('Unhandled Promise Rejection', error);
    errorCallbacks.unhandledRejection(error);
  });
  beforeExit.reset();
  process.on('beforeExit', beforeExit.invoke);

  let handler;
  try {
    handler = await loadHandler(process.env.LAMBDA_TASK_ROOT || '/var/task', process.env._HANDLER || '');
  } catch (e) {
    // AWS's runtime loads the handler in a top-level await; a failure there is an uncaught exception.
    logError('Uncaught Exception', e);
    errorCallbacks.uncaughtException(e);
    return;
  }
  new Runtime(client, handler, errorCallbacks).scheduleIteration();
}

main();
