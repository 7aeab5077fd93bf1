"""Health probe for containers and scripts: exit 0 when the service answers SERVING.

    python -m services.kit.probe 127.0.0.1:50051 [--service viarte.auth.v1.AuthService] [--timeout 3]
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["check", "main"]


def check(address: str, service: str = "", timeout: float = 3.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.kit.probe", description=__doc__)
    parser.add_argument("address")
    parser.add_argument("--service", default="")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    healthy = check(args.address, args.service, args.timeout)
    print("SERVING" if healthy else "NOT_SERVING")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
