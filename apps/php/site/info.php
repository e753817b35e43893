<?php
// A script of its own: /info.php/extra runs it with PATH_INFO=/extra.
header('Content-Type: application/json');
echo json_encode(['script' => 'info.php', 'SCRIPT_NAME' => $_SERVER['SCRIPT_NAME'],
                  'PATH_INFO' => $_SERVER['PATH_INFO'] ?? null, 'SCRIPT_FILENAME' => $_SERVER['SCRIPT_FILENAME']]), "\n";
