#!/usr/bin/env python3
"""The Python runtime client of nubis: it runs inside a Lambda sandbox and speaks the AWS Lambda
Runtime API, as AWS's own Python runtime (awslambdaric) does, with the standard library only.

Run as `python3 /var/runtime/python/bootstrap.py` with the working directory /var/task. It reads
AWS_LAMBDA_RUNTIME_API (host:port), _HANDLER ("module.function"; the module may be a path such as
"pkg/mod" or a dotted name such as "pkg.mod") and LAMBDA_TASK_ROOT, imports the handler, and then
loops: GET /runtime/invocation/next, call the handler, POST /runtime/invocation/{id}/response or
/runtime/invocation/{id}/error. A failure to load the handler is posted to /runtime/init/error and
ends the process with status 1.

What the function sees follows awslambdaric: the context object's attributes, the error shapes
({"errorMessage", "errorType", "requestId", "stackTrace"}) and errorType names (Runtime.*), the
unbuffered stdout and stderr, and the root logger's handler with its
"[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s" lines on stdout.
"""

import decimal
import importlib
import json
import logging
import os
import socket
import sys
import time
import traceback

_API_PREFIX = "/2018-06-01/runtime"
_ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# The request id of the invocation being handled, for the log lines' aws_request_id.
_GLOBAL_AWS_REQUEST_ID = None

_UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates with a change in the "
    "runtime version, you may be able to mitigate this error by temporarily rolling back to the "
    "previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)


class FaultException(Exception):
    """A failure the runtime reports with one of AWS's Runtime.* error types."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


# ---------------------------------------------------------------------------------------------
# The Runtime API client: one keep-alive HTTP/1.1 connection.


class RuntimeAPIError(Exception):
    pass


class _Response(object):
    __slots__ = ["status", "headers", "body"]

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body


class RuntimeClient:
    """Speaks the Runtime API over one persistent HTTP/1.1 connection; not safe for concurrent use.

    A small client of its own rather than http.client: the Runtime API is a handful of requests to one
    known server, and with http.client (which parses headers with the email package) a warm
    invocation took about 0.27 ms more than a bare Go client against the same server, with this
    about 0.12 ms.
    """

    def __init__(self, address):
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = address, "80"
        self._addr = (host.strip("[]"), int(port))
        self._host_header = address
        self._sock = None
        self._rfile = None

    def _connect(self):
        sock = socket.create_connection(self._addr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._rfile = sock.makefile("rb")

    def close(self):
        if self._sock is not None:
            self._rfile.close()
            self._sock.close()
            self._sock = self._rfile = None

    def _do(self, method, path, body=None, headers=()):
        head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, self._host_header)
        for name, value in headers:
            head += "%s: %s\r\n" % (name, value.replace("\r", " ").replace("\n", " "))
        if body is not None:
            head += "Content-Length: %d\r\n" % len(body)
        data = (head + "\r\n").encode("utf-8")
        if body:
            data += body
        # A kept-alive connection the server has closed fails on first use; retry once on a new one.
        for attempt in (0, 1):
            reused = self._sock is not None
            if not reused:
                self._connect()
            try:
                self._sock.sendall(data)
                return self._read_response()
            except (_NothingRead, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if attempt or not reused:
                    if isinstance(e, _NothingRead):
                        raise ConnectionError("the Runtime API closed the connection")
                    raise
            except BaseException:
                self.close()
                raise

    def _read_response(self):
        rfile = self._rfile
        line = rfile.readline(65537)
        if not line:
            raise _NothingRead()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise RuntimeAPIError("malformed status line %r" % line[:200])
        version, status = parts[0], int(parts[1])
        headers = {}
        while True:
            line = rfile.readline(65537)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ConnectionError("the Runtime API closed the connection in a response")
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
        close = version == b"HTTP/1.0" or "close" in headers.get("connection", "").lower()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                line = rfile.readline(65537)
                if not line:
                    raise ConnectionError("the Runtime API closed the connection in a response")
                size = int(line.split(b";", 1)[0], 16)
                if size == 0:
                    while rfile.readline(65537) not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    break
                chunk = rfile.read(size)
                if len(chunk) != size:
                    raise ConnectionError("the Runtime API closed the connection in a response")
                chunks.append(chunk)
                rfile.readline(65537)
            body = b"".join(chunks)
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body = rfile.read(n) if n else b""
            if len(body) != n:
                raise ConnectionError("the Runtime API closed the connection in a response")
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = rfile.read()
            close = True
        if close:
            self.close()
        return _Response(status, headers, body)

    def next(self):
        resp = self._do("GET", _API_PREFIX + "/invocation/next")
        if resp.status != 200:
            raise RuntimeAPIError(
                "GET /runtime/invocation/next: %d %s" % (resp.status, resp.body[:512].decode("utf-8", "replace"))
            )
        return resp.headers, resp.body

    def _post(self, path, body, content_type, error_type=None):
        headers = [("Content-Type", content_type)]
        if error_type is not None:
            headers.append((_ERROR_TYPE_HEADER, error_type))
        resp = self._do("POST", path, body, headers)
        if resp.status != 202:
            # AWS's runtime lets the platform judge the outcome (for example a response that is too
            # large); the invocation is over either way, so say why and go on.
            sys.stderr.write(
                "nubis runtime: POST %s: %d %s\n" % (path, resp.status, resp.body[:512].decode("utf-8", "replace"))
            )
        return resp.status

    def post_response(self, request_id, body, content_type="application/json"):
        return self._post(_API_PREFIX + "/invocation/%s/response" % request_id, body, content_type)

    def post_error(self, request_id, error_result):
        body = to_json(error_result).encode("utf-8")
        return self._post(
            _API_PREFIX + "/invocation/%s/error" % request_id, body, "application/json", error_result["errorType"]
        )

    def post_init_error(self, error_result):
        body = to_json(error_result).encode("utf-8")
        return self._post(_API_PREFIX + "/init/error", body, "application/json", error_result["errorType"])


class _NothingRead(Exception):
    """The server closed the connection before answering."""


# ---------------------------------------------------------------------------------------------
# JSON, as awslambdaric's marshaller (simplejson there; Decimals become numbers here too).


def _json_default(o):
    if isinstance(o, decimal.Decimal):
        if not o.is_finite():
            return float(o)
        return int(o) if o == o.to_integral_value() and o.as_tuple().exponent >= 0 else float(o)
    raise TypeError("Object of type %s is not JSON serializable" % o.__class__.__name__)


_encoder = json.JSONEncoder(default=_json_default)


def to_json(obj):
    return _encoder.encode(obj)


def unmarshal_request(body, content_type):
    if content_type and content_type.split(";")[0].strip() != "application/json":
        return body
    if not body:
        return None
    try:
        return json.loads(body)
    except Exception as e:
        raise FaultException(FaultException.UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % e, None)


def marshal_response(response):
    if isinstance(response, bytes):
        return response, "application/unknown"
    try:
        return to_json(response).encode("utf-8"), "application/json"
    except Exception as e:
        raise FaultException(FaultException.MARSHAL_ERROR, "Unable to marshal response: %s" % e, None)


# ---------------------------------------------------------------------------------------------
# The context object, attribute for attribute as awslambdaric's LambdaContext.


class CognitoIdentity(object):
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return (
            "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])"
            % (self.cognito_identity_id, self.cognito_identity_pool_id)
        )


class Client(object):
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __repr__(self):
        return (
            "Client([installation_id=%s,app_title=%s,app_version_name=%s,app_version_code=%s,app_package_name=%s])"
            % (self.installation_id, self.app_title, self.app_version_name, self.app_version_code, self.app_package_name)
        )


class ClientContext(object):
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def make_obj_from_dict(_class, _dict):
    if _dict is None:
        return None
    obj = _class()
    for field in _class.__slots__:
        setattr(obj, field, _dict.get(field, None))
    return obj


class LambdaContext(object):
    def __init__(self, invoke_id, client_context, cognito_identity, epoch_deadline_time_in_ms, invoked_function_arn=None):
        self.aws_request_id = invoke_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        # A string, as on AWS: the value of AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = None

        self.client_context = make_obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = make_obj_from_dict(Client, self.client_context.client)

        self.identity = make_obj_from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")

        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self):
        epoch_now_in_ms = int(time.time() * 1000)
        delta_ms = self._epoch_deadline_time_in_ms - epoch_now_in_ms
        return delta_ms if delta_ms > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext(["
            "aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,"
            "client_context=%s,identity=%s,tenant_id=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
                self.tenant_id,
            )
        )


def _parse_json_header(value, name):
    try:
        return json.loads(value)
    except Exception as e:
        raise FaultException(
            FaultException.LAMBDA_CONTEXT_UNMARSHAL_ERROR, "Unable to parse %s JSON: %s" % (name, e), None
        )


# ---------------------------------------------------------------------------------------------
# Errors and logs.


def make_error(error_message, error_type, stack_trace, invoke_id=None):
    return {
        "errorMessage": error_message if error_message else "",
        "errorType": error_type if error_type else "",
        "requestId": invoke_id if invoke_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _extract_traceback(tb):
    # 4-tuples, as awslambdaric: formatted without 3.11's column carets.
    return [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]


def build_fault_result(exc_info, invoke_id=None):
    etype, value, tb = exc_info
    tb_tuples = _extract_traceback(tb)
    # Leave out the runtime's own frames, as AWS does.
    for i in range(len(tb_tuples)):
        if "/bootstrap.py" not in tb_tuples[i][0]:
            tb_tuples = tb_tuples[i:]
            break
    return make_error(str(value), etype.__name__, traceback.format_list(tb_tuples), invoke_id)


def log_error(error_result):
    """Writes the "[ERROR] Type: message" record with its traceback, as awslambdaric's stdout sink:
    one line, its inner lines joined by carriage returns, indentation in no-break spaces."""
    description = "[ERROR]"
    error_type = error_result.get("errorType")
    if error_type:
        description += " " + error_type
    message = error_result.get("errorMessage")
    if message:
        if error_type:
            description += ":"
        description += " " + message
    lines = [description]
    stack_trace = error_result.get("stackTrace")
    if stack_trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack_trace:
            if element == "":
                lines.append("")
                continue
            for line in element.splitlines():
                stripped = line.lstrip(" ")
                lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    sys.stdout.write("\r".join(lines) + "\n")


class Unbuffered(object):
    """Flushes after every write, so print output reaches the log at once (as awslambdaric)."""

    def __init__(self, stream):
        self.stream = stream

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        pass

    def __getattr__(self, attr):
        return getattr(self.stream, attr)

    def write(self, msg):
        n = self.stream.write(msg)
        self.stream.flush()
        return n

    def writelines(self, msgs):
        self.stream.writelines(msgs)
        self.stream.flush()


class LambdaLoggerHandler(logging.Handler):
    def emit(self, record):
        try:
            sys.stdout.write(self.format(record))
        except Exception:
            self.handleError(record)


class LambdaLoggerFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _GLOBAL_AWS_REQUEST_ID or ""
        return True


def _setup_logging():
    logging.Formatter.converter = time.gmtime
    handler = LambdaLoggerHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(LambdaLoggerFilter())
    logger = logging.getLogger()
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in logging._nameToLevel:
        logger.setLevel(level)
    logger.addHandler(handler)


# ---------------------------------------------------------------------------------------------
# Loading the handler.


def get_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(FaultException.MALFORMED_HANDLER_NAME, "Bad handler '%s': %s" % (handler, e))

    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                "Cannot use built-in module %s as a handler module" % modname,
            )
        m = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException(FaultException.IMPORT_MODULE_ERROR, "Unable to import module '%s': %s" % (modname, e))
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR, "Syntax error in module '%s': %s" % (modname, e), trace
        )

    try:
        return getattr(m, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND, "Handler '%s' missing on module '%s'" % (fname, modname), None
        )


# ---------------------------------------------------------------------------------------------
# The invocation loop.


def handle_event(client, request_handler, headers, body):
    global _GLOBAL_AWS_REQUEST_ID
    invoke_id = headers.get("lambda-runtime-aws-request-id")
    _GLOBAL_AWS_REQUEST_ID = invoke_id

    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id is not None:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)

    error_result = None
    try:
        client_context = headers.get("lambda-runtime-client-context")
        cognito_identity = headers.get("lambda-runtime-cognito-identity")
        context = LambdaContext(
            invoke_id,
            _parse_json_header(client_context, "Client Context") if client_context else None,
            _parse_json_header(cognito_identity, "Cognito Identity") if cognito_identity else None,
            int(headers.get("lambda-runtime-deadline-ms") or 0),
            headers.get("lambda-runtime-invoked-function-arn"),
        )
        event = unmarshal_request(body, headers.get("content-type"))
        response = request_handler(event, context)
        result, content_type = marshal_response(response)
    except FaultException as e:
        error_result = make_error(e.msg, e.exception_type, e.trace, invoke_id)
    except Exception:
        error_result = build_fault_result(sys.exc_info(), invoke_id)

    if error_result is not None:
        log_error(error_result)
        client.post_error(invoke_id, error_result)
    else:
        client.post_response(invoke_id, result, content_type)


def main():
    sys.stdout = Unbuffered(sys.stdout)
    sys.stderr = Unbuffered(sys.stderr)

    task_root = os.environ.get("LAMBDA_TASK_ROOT") or "/var/task"
    # The function's code first, then layers, as on AWS; not the runtime's own directory.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != here]
    for p in reversed([task_root, "/opt/python/lib/python%d.%d/site-packages" % sys.version_info[:2], "/opt/python"]):
        if p not in sys.path:
            sys.path.insert(0, p)

    client = RuntimeClient(os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"))

    try:
        _setup_logging()
        request_handler = get_handler(os.environ.get("_HANDLER", ""))
    except Exception as e:
        if isinstance(e, FaultException):
            error_result = make_error(e.msg, e.exception_type, e.trace)
        else:
            error_result = build_fault_result(sys.exc_info())
        logging.warning(_UNHANDLED_EXCEPTION_WARNING)
        log_error(error_result)
        client.post_init_error(error_result)
        sys.exit(1)

    while True:
        headers, body = client.next()
        handle_event(client, request_handler, headers, body)


if __name__ == "__main__":
    main()
