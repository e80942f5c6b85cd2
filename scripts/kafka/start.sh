#!/usr/bin/env bash
# Starts a single-node Apache Kafka (KRaft, combined broker/controller) from Maven Central jars.
# Idempotent: a broker already answering on the port is reused. Data and logs live under .var/kafka-<port>.
#   KAFKA_PORT (default 9092)   client listener on 127.0.0.1; the controller listens on KAFKA_PORT+1
#   KAFKA_HEAP (default 768m)   broker heap
# Prints where the log is when the broker fails to start.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=${KAFKA_PORT:-9092}
controller_port=$((port + 1))
heap=${KAFKA_HEAP:-768m}
libs="$root/.var/kafka-libs"
dir="$root/.var/kafka-$port"
log="$dir/server.log"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if listening "$port"; then
  echo "kafka: reusing the broker on 127.0.0.1:$port"
  exit 0
fi

if [ ! -f "$libs/.complete" ]; then
  echo "kafka: fetching broker jars with Maven (scripts/kafka/pom.xml)"
  rm -rf "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
fi

mkdir -p "$dir/data"
cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
delete.topic.enable=true
PROPS

cat > "$dir/log4j2.yaml" <<'YAML'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
YAML

java_cmd=(java "-Xms256m" "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$dir/log4j2.yaml" -cp "$libs/*")

if [ ! -f "$dir/data/meta.properties" ]; then
  cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid)
  "${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 || {
    echo "kafka: formatting storage failed; see $dir/format.log" >&2
    exit 1
  }
fi

nohup "${java_cmd[@]}" kafka.Kafka "$dir/server.properties" >"$log" 2>&1 </dev/null &
echo $! > "$dir/pid"

for _ in $(seq 1 120); do
  if grep -q "Transition from STARTING to STARTED" "$log" 2>/dev/null && listening "$port"; then
    echo "kafka: broker up on 127.0.0.1:$port (pid $(cat "$dir/pid"), log $log)"
    exit 0
  fi
  if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then break; fi
  sleep 0.5
done
echo "kafka: the broker did not start on 127.0.0.1:$port; its log is $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
