"""A feed publisher for the feed tests: serves the files of DIR on 127.0.0.1:PORT with an ETag
(the SHA-256 of the file) and answers 304 to an If-None-Match that matches; /requests.log lists
each request (path, If-None-Match, status). Usage: feed_server.py DIR PORT"""
import hashlib, http.server, os, sys

root, port = sys.argv[1], int(sys.argv[2])
log = open(os.path.join(root, "requests.log"), "a", buffering=1)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = os.path.join(root, self.path.lstrip("/").split("?")[0])
        if not os.path.isfile(path) or self.path.endswith(".log"):
            self.send_response(404)
            self.end_headers()
            log.write(f"{self.path} - 404\n")
            return
        body = open(path, "rb").read()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            log.write(f"{self.path} {self.headers.get('If-None-Match')} 304\n")
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log.write(f"{self.path} {self.headers.get('If-None-Match')} 200\n")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
