# Helpers the benchmark scripts share (sourced): free ports, waiting for HTTP, a private ClickHouse server.
# The sourcing script provides `work` (a scratch directory) and `pids` (processes to stop on exit).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

start_clickhouse() {
  local d="$work/ch" http tcp
  http=$(free_port); tcp=$(free_port)
  mkdir -p "$d"/{data,tmp,user_files,format_schemas,log}
  cat >"$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$d/log/server.log</log><errorlog>$d/log/server.err.log</errorlog></logger>
  <http_port>$http</http_port><tcp_port>$tcp</tcp_port><listen_host>127.0.0.1</listen_host>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>67108864</mark_cache_size>
  <path>$d/data/</path><tmp_path>$d/tmp/</tmp_path><user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>$d/users.xml</users_config><default_profile>default</default_profile>
  <default_database>default</default_database><mlock_executable>false</mlock_executable>
</yandex>
EOF
  cat >"$d/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
  local bin=/usr/bin/clickhouse-server; [ -x "$bin" ] || bin=/usr/sbin/clickhouse-server
  "$bin" --config-file="$d/config.xml" >"$d/log/stdout" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$http/ping"
  CH_URL="http://127.0.0.1:$http"
}

