#!/bin/sh
# GET / of the test bed's storage RPC server (python3-swh.storage @VERSION@),
# run by busybox httpd as /cgi-bin/index.cgi.
#
# Like SWH's nginx in front of its RPC servers, a request whose Host header
# is not this host's own name (`uname -n`, or a longer name starting with it,
# e.g. NAME.internal.softwareheritage.org; any :port is ignored) gets no
# answer at all: the connection is closed, as nginx's `return 444` does.
# Otherwise the answer is the page swh.storage.api.server's index() returns.
host="${HTTP_HOST:-}"
case "$host" in
  *:*) host="${host%:*}" ;;
esac
me="$(uname -n)"
case "$host" in
  "$me" | "$me".*) ;;
  *) exit 0 ;;
esac
printf 'Content-Type: text/html; charset=utf-8\r\n\r\n'
cat <<'PAGE'
<html>
<head><title>Software Heritage storage server</title></head>
<body>
<p>You have reached the
<a href="https://www.softwareheritage.org/">Software Heritage</a>
storage server.<br />
See its
<a href="https://docs.softwareheritage.org/devel/swh-storage/">documentation
and API</a> for more information</p>
<!-- swh-deploy test bed: python3-swh.storage @VERSION@ (swh.storage @UPSTREAM@) -->
</body>
</html>
PAGE
