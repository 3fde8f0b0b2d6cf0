#!/bin/sh
exec java -Xmx256m -Dlog4j.configuration=file:/opt/kafka/log4j.properties -cp '/opt/kafka/libs/*' \
    org.apache.kafka.tools.TopicCommand "$@"
