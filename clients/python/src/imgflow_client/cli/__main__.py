from imgflow_client.cli.main import main

main()
