"""An OTLP receiver for the tests: gRPC MetricsService/TraceService/LogsService and
OTLP/HTTP (/v1/metrics, /v1/traces, /v1/logs), decoding every request with the official
generated classes of PyPI's opentelemetry-proto (no decoder of our own), and writing
each one, as protobuf's own JSON mapping, to one line of OUT.

Usage: receiver.py OUT. Prints "ready GRPC_PORT HTTP_PORT" once both listen on
127.0.0.1; runs until killed (SIGTERM)."""

import json
import signal
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

OUT = open(sys.argv[1], "a", encoding="utf-8")
LOCK = threading.Lock()


def keep(signal_name, transport, request):
    line = json.dumps(
        {
            "signal": signal_name,
            "transport": transport,
            "request": json_format.MessageToDict(request),
        }
    )
    with LOCK:
        OUT.write(line + "\n")
        OUT.flush()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request, context):
        keep("metrics", "grpc", request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        keep("traces", "grpc", request)
        return trace_service_pb2.ExportTraceServiceResponse()


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        keep("logs", "grpc", request)
        return logs_service_pb2.ExportLogsServiceResponse()


HTTP_ROUTES = {
    "/v1/metrics": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/traces": (
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/logs": (
        "logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
}


class Http(BaseHTTPRequestHandler):
    def do_POST(self):
        route = HTTP_ROUTES.get(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if route is None or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404 if route is None else 415)
            self.end_headers()
            return
        name, request_type, response_type = route
        request = request_type()
        request.ParseFromString(body)
        keep(name, "http", request)
        reply = response_type().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: (server.stop(0), sys.exit(0)))
    print(f"ready {grpc_port} {http.server_address[1]}", flush=True)
    server.wait_for_termination()


main()
