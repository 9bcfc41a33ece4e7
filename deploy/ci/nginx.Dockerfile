# CI's stand-in for the official nginx image: Debian's nginx, configured from /etc/nginx/conf.d/ like the official
# one (Debian's default site goes), logging to the container's output.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
STOPSIGNAL SIGQUIT
EXPOSE 8443 8444
CMD ["nginx", "-g", "daemon off;"]
