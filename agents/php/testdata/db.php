<?php
// Connects to PostgreSQL with no knowledge of the agent and reports what the server sees.
$conn = pg_connect(getenv('BITVILLE_TEST_PG_CONNINFO'));
$row = pg_fetch_row(pg_query($conn, 'SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()'));
$pdo = new PDO('pgsql:' . getenv('BITVILLE_TEST_PG_CONNINFO'));
$pdoName = $pdo->query('SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()')->fetchColumn();
usleep(100000);
header('Content-Type: application/json');
echo json_encode(array('pgsql' => $row[0], 'pdo' => $pdoName, 'id' => BitvilleAgent::correlationId(), 'comment' => BitvilleAgent::sqlComment('SELECT 1;')));
